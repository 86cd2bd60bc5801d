import { serve } from "inngest/next";

import { inngest } from "../../../inngest/client";
import { functions } from "../../../inngest/functions";

// Every request must reach the SDK; never let Next prerender or cache the GET.
export const dynamic = "force-dynamic";

export const { GET, POST, PUT } = serve({ client: inngest, functions });
