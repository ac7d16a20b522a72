"""The experts method as a job kind: its CLI command, embedded run, stage handlers, result files
and report page (docs/methods.md, part A)."""

from neuroscribe.jobs import ExpertsJob, ExpertsResult
from neuroscribe.service.kinds import JobKind

KIND = JobKind(
    name="experts",
    job=ExpertsJob,
    result=ExpertsResult,
    stages=("generate", "activate", "analyse"),
    handlers="neuroscribe.service.experts.handlers:HANDLERS",
    run="neuroscribe.service.experts.embedded:run_experts_job",
    result_file="experts.json",
    cli="neuroscribe.service.experts.cli:register",
    page="neuroscribe.service.experts.report:write_report",
    summary="neuroscribe.service.experts.record_summary:record_summary",
)
