// A task worker in JavaScript over plain HTTP (Node 18+: fetch is built in): it serves the `payments` queue of
// examples/workers/order-approval.yaml as examples/handlers.py's @task("charge-card") does in Python.
//
//   PROCENGINE_URL=http://127.0.0.1:8080 [PROCENGINE_TOKEN=...] node examples/workers/worker.js
//
// The loop is the whole protocol (docs/workers.md): fetch (a long poll) -> run -> complete or fail with the lock
// token. SIGTERM or Ctrl-C: no new fetch; the tasks in hand finish first.

const base = (process.env.PROCENGINE_URL || "http://127.0.0.1:8080") + "/api/v1/process-engine";
const token = process.env.PROCENGINE_TOKEN;
const queue = process.env.QUEUE || "payments";
const workerId = `js-${process.pid}`;
const DECLINED_CARD = "4000-0000-0000-0002";
let stopping = false;

async function call(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(base + path, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json();
  if (!answer.success) throw Object.assign(new Error(answer.error.message), { code: answer.error.code });
  return answer.data;
}

// what the task does: a stand-in for a card gateway
function chargeCard(input, task) {
  if (input.card === DECLINED_CARD) {
    return { error: `card ${input.card} declined: insufficient funds`, type: "CardDeclined", retryable: false };
  }
  return { output: { charged: input.amount, reference: `ch_${task.idempotencyKey}`, by: "javascript" } };
}

async function serve(task) {
  const result = task.handler === "charge-card"
    ? chargeCard(task.input, task)
    : { error: `unknown handler ${task.handler}`, type: "UnknownHandler", retryable: true };
  const lock = { lockToken: task.lockToken };
  try {
    if ("output" in result) await call(`/tasks/${task.taskId}/complete`, { ...lock, output: result.output });
    else await call(`/tasks/${task.taskId}/fail`, { ...lock, ...result });
  } catch (error) {
    console.error(`task ${task.taskId}: ${error.code}: ${error.message}`); // a lock that no longer counts
  }
}

async function main() {
  console.log(`worker ${workerId}: serving queue ${queue}`);
  while (!stopping) {
    let tasks = [];
    try {
      ({ tasks } = await call("/tasks/fetch", { queues: [queue], workerId, max: 8, lockMs: 30000, waitMs: 1000 }));
    } catch (error) {
      console.error(`fetch failed: ${error.message}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await Promise.all(tasks.map(serve));
  }
  console.log(`worker ${workerId}: stopped`);
}

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => { stopping = true; });
main();
