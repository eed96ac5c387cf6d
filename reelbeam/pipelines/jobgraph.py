"""What a built job looks like to a runner: its steps, which of them carry resource hints, and the
worker environment (container image, staged files). `reelbeam run --dry_run` prints it; the
offline Dataflow test asserts on it."""

from __future__ import annotations

import dataclasses

ACCELERATOR_URN = "beam:resources:accelerator:v1"


@dataclasses.dataclass
class JobGraph:
    """steps: the top-level steps, in the pipeline's order. leaf_steps: every executable step's
    full name. accelerated: leaf step -> its accelerator hint (steps without one are absent).
    images: the environments' container images. staged: files staged for the workers (e.g.
    workflow.tar.gz, the package built from --setup_file)."""

    steps: list[str]
    leaf_steps: list[str]
    accelerated: dict[str, str]
    images: list[str]
    staged: list[str]

    @property
    def accelerated_stages(self) -> list[str]:
        """The top-level steps with an accelerated step inside, in order."""
        tops = {name.split("/", 1)[0] for name in self.accelerated}
        return [s for s in self.steps if s in tops]

    def lines(self) -> list[str]:
        n = len(self.accelerated)
        out = [f"job graph: {len(self.steps)} top-level steps, {len(self.leaf_steps)} steps in all, {n} on GPUs"]
        out += [f"  GPU step: {s} ({self.accelerated[s]})" for s in sorted(self.accelerated)]
        if self.images:
            out.append(f"worker image: {', '.join(sorted(set(self.images)))}")
        if self.staged:
            out.append(f"staged for the workers: {', '.join(sorted(set(self.staged)))}")
        return out


def job_graph(proto) -> JobGraph:
    """The JobGraph of a Beam pipeline proto (`Pipeline.to_runner_api()` or a runner's own copy)."""
    from apache_beam.portability import common_urns
    from apache_beam.portability.api import beam_runner_api_pb2

    transforms = proto.components.transforms
    environments = proto.components.environments
    roots = list(proto.root_transform_ids)
    while len(roots) == 1 and transforms[roots[0]].subtransforms:  # the pipeline's own root composite
        roots = list(transforms[roots[0]].subtransforms)
    steps = [transforms[r].unique_name for r in roots]
    leaves = [t for t in transforms.values() if not t.subtransforms]
    accelerated = {}
    for t in leaves:
        env = environments.get(t.environment_id) if t.environment_id else None
        if env is not None and ACCELERATOR_URN in env.resource_hints:
            accelerated[t.unique_name] = env.resource_hints[ACCELERATOR_URN].decode()
    images, staged = [], []
    for env in environments.values():
        if env.urn == common_urns.environments.DOCKER.urn:
            images.append(beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image)
        for dep in env.dependencies:
            if dep.role_urn == common_urns.artifact_roles.STAGING_TO.urn:
                staged.append(beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name)
    return JobGraph(steps, sorted(t.unique_name for t in leaves), accelerated, images, staged)
