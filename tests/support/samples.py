"""The API Reference's sample responses and the models they must parse into.

The bodies are copied from "Querying Job Resource Specifications" (``docs/modelarts-api.md``);
the models are written by hand from its field descriptions (``cpu`` is memory in GiB, ``core`` the
number of cores), not produced by the parser.
"""

from __future__ import annotations

from exporter.models import ResourceSpec

# QueryJobResourceSpecs "Successful sample response", copied verbatim from the API Reference.
SPECS_SAMPLE = b"""{
    "specs": [

        {
            "spec_id": 2,
            "core": "2",
            "cpu": "8",
            "gpu_num": 0,
            "gpu_type": "",
            "spec_code": "modelarts.vm.cpu.2u",
            "unit_num": 1,
            "max_num": 2,
            "storage": "",
            "interface_type": 1,
            "no_resource": false
        },
        {
            "spec_id": 4,
            "core": "8",
            "cpu": "64",
            "gpu_num": 1,
            "gpu_type": "v100",
            "spec_code":"modelarts.vm.gpu.v100",
            "unit_num": 1,
            "max_num": 4,
            "storage": "",
            "interface_type": 1,
            "no_resource": false
        }
    ],
    "is_success": true,
    "spec_total_count": 2
}"""

# QueryJobResourceSpecs "Failed sample response", copied verbatim from the API Reference.
SPECS_FAILED_SAMPLE = b"""{
    "is_success": false,
    "error_message": "Error string",
    "error_code": "ModelArts.0105"
}"""

CPU_SPEC = ResourceSpec(
    spec_code="modelarts.vm.cpu.2u",
    spec_id="2",
    gpu_type="",
    storage="",
    interface_type="1",
    no_resource=False,
    gpus=0.0,
    cpu_cores=2.0,
    memory_gib=8.0,
    max_nodes=2.0,
    pricing_units=1.0,
)
GPU_SPEC = ResourceSpec(
    spec_code="modelarts.vm.gpu.v100",
    spec_id="4",
    gpu_type="v100",
    storage="",
    interface_type="1",
    no_resource=False,
    gpus=1.0,
    cpu_cores=8.0,
    memory_gib=64.0,
    max_nodes=4.0,
    pricing_units=1.0,
)

# A JSON number too large for a float (400 digits); valid JSON, accepted by json.loads.


#: The nine statuses of the ShowWorkloadStatistics page ("status" table), lower-cased, in its
#: order: written from the page, not taken from the exporter's models.
DOCUMENTED_STATUSES = (
    "queue",
    "pending",
    "abnormal",
    "terminating",
    "creating",
    "running",
    "completed",
    "terminated",
    "failed",
)
