"""The rank method as a job kind: its CLI command, embedded run, stage handlers, result files and
page (docs/methods.md, part C)."""

from neuroscribe.jobs import RankJob, RankResult
from neuroscribe.service.kinds import JobKind

KIND = JobKind(
    name="rank",
    job=RankJob,
    result=RankResult,
    stages=("activate", "analyse"),
    handlers="neuroscribe.service.rank.handlers:HANDLERS",
    run="neuroscribe.service.rank.embedded:run_rank_job",
    result_file="rankings.json",
    cli="neuroscribe.service.rank.cli:register",
    page="neuroscribe.service.rank.page:rebuild_rank_page",
)
