// One function per scenario of stepwell's official-SDK tests. The Python app in
// ../../py_inngest/app.py defines the same ids, triggers and return values, so
// one scenario table can drive both.
import { NonRetriableError } from "inngest";

import { inngest } from "./client";

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// Two sequential steps: returns data.a + data.b ("A" + "B" by default).
export const sequential = inngest.createFunction(
  { id: "sequential", triggers: { event: "test/sequential" } },
  async ({ event, step }) => {
    const a = await step.run("a", () => String(event.data?.a ?? "A"));
    const ab = await step.run("b", () => a + String(event.data?.b ?? "B"));
    return ab;
  },
);

export const sleeper = inngest.createFunction(
  { id: "sleeper", triggers: { event: "test/sleeper" } },
  async ({ step }) => {
    await step.sleep("nap", "2s");
    return "slept";
  },
);

// Resolves with the data of the matching test/approve event, or null on timeout.
export const waiter = inngest.createFunction(
  { id: "waiter", triggers: { event: "test/waiter" } },
  async ({ step }) => {
    const approval = await step.waitForEvent("w", {
      event: "test/approve",
      if: "event.data.id == async.data.id",
      timeout: "1h",
    });
    return approval ? approval.data : null;
  },
);

export const waiterTimeout = inngest.createFunction(
  { id: "waiter-timeout", triggers: { event: "test/waiter-timeout" } },
  async ({ step }) => {
    const approval = await step.waitForEvent("w", {
      event: "test/approve",
      if: "event.data.id == async.data.id",
      timeout: "2s",
    });
    return { timed_out: approval === null };
  },
);

// Returns its event's data, so fan-out and invoke tests can see what arrived.
export const child = inngest.createFunction(
  { id: "child", triggers: { event: "test/child" } },
  async ({ event }) => event.data ?? {},
);

export const fanout = inngest.createFunction(
  { id: "fanout", triggers: { event: "test/fanout" } },
  async ({ event, step }) => {
    const parent = event.data?.id ?? null;
    const { ids } = await step.sendEvent(
      "fan",
      [0, 1, 2].map((i) => ({ name: "test/child", data: { parent, i } })),
    );
    return { sent: ids.length };
  },
);

export const invoker = inngest.createFunction(
  { id: "invoker", triggers: { event: "test/invoker" } },
  async ({ event, step }) => {
    return await step.invoke("call", {
      function: child,
      data: { via: "invoke", n: event.data?.n ?? 1 },
    });
  },
);

// The step fails on attempts 0 and 1 and succeeds on attempt 2.
export const flaky = inngest.createFunction(
  { id: "flaky", retries: 3, triggers: { event: "test/flaky" } },
  async ({ attempt, step }) => {
    return await step.run("shaky", () => {
      if (attempt < 2) {
        throw new Error(`flaky step fails on attempt ${attempt}`);
      }
      return { attempt };
    });
  },
);

export const fatal = inngest.createFunction(
  {
    id: "fatal",
    triggers: { event: "test/fatal" },
    onFailure: async () => ({ handled: true }),
  },
  async () => {
    throw new NonRetriableError("fatal: do not retry");
  },
);

export const parallel = inngest.createFunction(
  { id: "parallel", triggers: { event: "test/parallel" } },
  async ({ step }) => {
    return await Promise.all([
      step.run("p1", () => 1),
      step.run("p2", () => 2),
      step.run("p3", () => 3),
    ]);
  },
);

// Sleeps for an hour unless a test/cancel event with the same data.id arrives.
export const cancellable = inngest.createFunction(
  {
    id: "cancellable",
    triggers: { event: "test/cancellable" },
    cancelOn: [{ event: "test/cancel", match: "data.id" }],
  },
  async ({ step }) => {
    await step.sleep("long", "1h");
    return "woke";
  },
);

// At most one run at a time; each records when its ~300 ms step ran (epoch ms)
// so a test can check that no two runs overlapped.
export const limited = inngest.createFunction(
  { id: "limited", concurrency: { limit: 1 }, triggers: { event: "test/limited" } },
  async ({ step }) => {
    return await step.run("work", async () => {
      const started = Date.now();
      await pause(300);
      return { started, finished: Date.now() };
    });
  },
);

export const cron = inngest.createFunction(
  { id: "cron", triggers: { cron: "* * * * *" } },
  async () => "tick",
);

// Ten sequential steps returning small values: W1 (per-step overhead) of bench/http.py.
// Not part of the scenario table, so the Python app has no twin of it.
export const tenSteps = inngest.createFunction(
  { id: "ten-steps", triggers: { event: "bench/w1" } },
  async ({ step }) => {
    let total = 0;
    for (let i = 0; i < 10; i++) {
      total += await step.run(`s${i}`, () => i);
    }
    return total;
  },
);

// step.fetch: the engine makes the request (a "Gateway" op) and the SDK gets a Response back.
// Only the TS SDK has step.fetch, so the Python app has no twin of it.
export const fetcher = inngest.createFunction(
  { id: "fetcher", triggers: { event: "test/fetch" } },
  async ({ event, step }) => {
    const response = await step.fetch(event.data.url);
    const body = await response.json();
    return { status: response.status, body };
  },
);

// Promise.race over two steps in a race-mode group: the step that finishes first wins, whatever
// the order they were started in. TS only (the Python SDK's group has no race).
export const racer = inngest.createFunction(
  { id: "racer", triggers: { event: "test/race" } },
  async ({ step, group }) => {
    return await group.parallel({ mode: "race" }, async () =>
      Promise.race([
        step.run("slow", async () => {
          await pause(1500);
          return "slow";
        }),
        step.run("fast", async () => {
          await pause(50);
          return "fast";
        }),
      ]),
    );
  },
);

// step.run with arguments: the SDK reports them as the step's input (opts.input), and a rerun
// from the step with edited input hands the step those arguments instead. TS only.
export const biller = inngest.createFunction(
  { id: "biller", triggers: { event: "test/bill" } },
  async ({ event, step }) => {
    const order = await step.run("prepare", () => ({ amount: event.data.amount as number }));
    return await step.run(
      "charge",
      (amount: number, currency: string) => ({ charged: amount, currency }),
      order.amount,
      "EUR",
    );
  },
);

export const functions = [
  sequential,
  sleeper,
  waiter,
  waiterTimeout,
  fanout,
  child,
  invoker,
  flaky,
  fatal,
  parallel,
  cancellable,
  limited,
  cron,
  tenSteps,
  fetcher,
  racer,
  biller,
];
