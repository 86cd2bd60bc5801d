import { Inngest } from "inngest";

// CHECKPOINTING=false turns off the v4 async checkpointing (PROTOCOL.md §1.11),
// so the SDK speaks only the classic call/206 protocol. Any other value keeps
// the SDK default (on).
const checkpointingOff = process.env.CHECKPOINTING === "false";

export const inngest = new Inngest({
  id: "nextjs-app",
  ...(checkpointingOff ? { checkpointing: false } : {}),
});
