"""SpiffWorkflow (`spiffworkflow` on PyPI), a BPMN engine library with no store of its own, made durable by hand:
after each script task the workflow is serialized (its own `BpmnWorkflowSerializer`, JSON) and written to Redis with
one SET, the least a hand-built durable loop can do. Redis is the comparison's own redis-server (`--redis-url`).

The definition is a BPMN process of N script tasks in a row (`value = value + 1`). Workflows run one after the
other in this process (the library is synchronous); the fan-out is 100 of them in turn.
"""

from __future__ import annotations

import itertools

import redis
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.util.task import TaskState

from bench.peers.driver import Args, Result, now, parse_args, run_main, version

PEER = "spiffworkflow"
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def chain_bpmn(process_id: str, steps: int) -> str:
    """A BPMN process: start, `steps` script tasks in a row, end."""
    nodes = ['<bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>']
    for i in range(1, steps + 1):
        nodes.append(
            f'<bpmn:scriptTask id="t{i}" name="t{i}"><bpmn:incoming>f{i - 1}</bpmn:incoming>'
            f"<bpmn:outgoing>f{i}</bpmn:outgoing><bpmn:script>value = value + 1</bpmn:script></bpmn:scriptTask>"
        )
    nodes.append(f'<bpmn:endEvent id="end"><bpmn:incoming>f{steps}</bpmn:incoming></bpmn:endEvent>')
    ids = ["start", *(f"t{i}" for i in range(1, steps + 1)), "end"]
    flows = [
        f'<bpmn:sequenceFlow id="f{i}" sourceRef="{source}" targetRef="{target}" />'
        for i, (source, target) in enumerate(itertools.pairwise(ids))
    ]
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions xmlns:bpmn="{BPMN}" id="d" '
        f'targetNamespace="http://bpmn.io/schema/bpmn"><bpmn:process id="{process_id}" isExecutable="true">'
        + "".join(nodes + flows)
        + "</bpmn:process></bpmn:definitions>"
    )


class Runner:
    def __init__(self, client: redis.Redis, steps: int) -> None:
        parser = BpmnParser()
        parser.add_bpmn_str(chain_bpmn("chain", steps).encode())
        self.spec = parser.get_spec("chain")
        self.client = client
        self.serializer = BpmnWorkflowSerializer()
        self.count = 0

    def run(self) -> int:
        """One workflow from start to end, its state SET in Redis after each script task."""
        self.count += 1
        key = f"spiff:{self.count}"
        workflow = BpmnWorkflow(self.spec)
        workflow.data["value"] = 0
        workflow.get_tasks(state=TaskState.READY)[0].data["value"] = 0
        while not workflow.is_completed():
            task = workflow.get_next_task(state=TaskState.READY)
            if task is None:
                raise RuntimeError("the workflow waits on nothing a loop can run")
            task.run()
            if isinstance(task.task_spec, ScriptTask):
                self.client.set(key, self.serializer.serialize_json(workflow))
        value: int = workflow.last_task.data["value"] if workflow.last_task is not None else -1
        return value


def _measure(args: Args) -> Result:
    if not args.redis_url:
        raise RuntimeError("no --redis-url: SpiffWorkflow's hand loop writes to the comparison's Redis")
    client = redis.Redis.from_url(args.redis_url)
    result = Result(PEER, f"spiffworkflow {version('spiffworkflow')}", "hand loop, SET per task")
    chain, fanout = Runner(client, args.chain), Runner(client, args.steps)
    assert Runner(client, 3).run() == 3  # warm
    for _ in range(args.rounds):
        started = now()
        assert chain.run() == args.chain
        chain_s = now() - started
        started = now()
        done = [fanout.run() for _ in range(args.executions)]
        fanout_s = now() - started
        assert done == [args.steps] * args.executions
        result.rounds.append({"chain_s": chain_s, "fanout_s": fanout_s})
    result.notes = (
        f"BPMN script tasks, the serialized workflow SET after each ({args.redis_url.split('://')[0]}://), "
        "workflows one after the other in one process"
    )
    client.close()
    return result


def main() -> None:
    _measure(parse_args()).emit()


if __name__ == "__main__":
    raise SystemExit(run_main(PEER, main))
