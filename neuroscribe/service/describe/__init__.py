"""The describe method as a job kind: its CLI command, embedded run, stage handlers, result files
and page (docs/methods.md, part B)."""

from neuroscribe.jobs import DescribeJob, DescribeResult
from neuroscribe.service.kinds import JobKind

KIND = JobKind(
    name="describe",
    job=DescribeJob,
    result=DescribeResult,
    stages=("generate", "cluster", "activate", "analyse", "explain"),
    handlers="neuroscribe.service.describe.handlers:HANDLERS",
    run="neuroscribe.service.describe.embedded:run_describe_job",
    result_file="descriptions.json",
    cli="neuroscribe.service.describe.cli:register",
    page="neuroscribe.service.describe.page:rebuild_describe_page",
)
