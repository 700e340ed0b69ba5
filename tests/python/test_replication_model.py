"""Model-based fault test of replication (issue 12 §4): a seeded random sequence of steps across
three `coffer serve` processes (us-west-2, us-east-1, eu-west-1), every link between them
through a TCP proxy. Steps are API calls through boto3 — create with replicas, put, replicate
(with and without ForceOverwriteReplicaSecret), remove, promote, delete and restore — mixed
with faults: SIGKILL and restart of a node, a link refused or black-holed, and healed.

A simple model says what each call must answer and what every Region must hold once things are
quiet. At each quiescent point (every link healed, every node up, every queue empty) the test
checks, for every name in every Region:

- every replica equals its primary (versions, labels, value);
- the primary lists exactly the Regions the model expects (none leaves silently), each
  `InSync` (and then truly equal) or `Failed` with the cause the model expects;
- nothing the model has deleted or promoted is resurrected or overwritten without
  ForceOverwriteReplicaSecret;
- no acknowledged write is lost.

A failing run prints its seed and the steps it ran. Rerun one seed with
`COFFER_MODEL_SEED=<seed> tests/python/run.sh -k replication_model`; seeds that once failed are
kept in REGRESSION_SEEDS.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

from cluster import Cluster, TcpProxy, metric, wait_for

WEST, EAST, EU = "us-west-2", "us-east-1", "eu-west-1"
REGIONS = (WEST, EAST, EU)
NAMES = ("app/db", "app/api", "ops/key", "ops/token")
STEPS = int(os.environ.get("COFFER_MODEL_STEPS", "1000"))
QUIET_EVERY = 100
FIRST_SEED = 0x5EED_12
# Seeds that once found a defect, run on every CI run.
REGRESSION_SEEDS: list[int] = [
    # A sync overtook the removal queued ahead of it (the removal failed, the sync was sent
    # next in the same pass); and a forced overwrite answered late landed after the user had
    # removed the Region, then the removal deleted the replica that had replaced the secret.
    7,
]

CLASH = "Replication failed: Secret name {name} already exists in region {region}."
FROM_OTHER = "Replication failed: Can't overwrite secret {name} that is currently replicated from"
TO_OTHERS = "Replication failed: Can't overwrite secret {name} that is currently replicated to other region(s)."


@dataclass
class Copy:
    """What the model expects of one name in one Region."""

    kind: str  # "primary" (a standalone secret is a primary without replicas) or "replica"
    value: str | None = None  # the primary's current value
    history: list[str] = field(default_factory=list)  # every value acknowledged, in order
    replicas: dict[str, str] = field(default_factory=dict)  # Region -> expected final status
    primary_region: str | None = None  # of a replica
    deleted: bool = False  # scheduled for deletion
    # A replica that overwrites (ForceOverwriteReplicaSecret) this copy, until a quiescent
    # point has seen the overwrite done.
    replaced: Copy | None = None


class Run:
    def __init__(self, seed: int, base):
        self.seed = seed
        self.rng = random.Random(seed)
        self.log: list[str] = []
        self.model: dict[tuple[str, str], Copy] = {}
        self.counter = 0
        self.cluster = Cluster(base, {r: [r] for r in REGIONS}, failure_timeout_secs=2)
        self.proxies: dict[tuple[str, str], TcpProxy] = {}
        for src in REGIONS:
            for dst in REGIONS:
                if src != dst:
                    proxy = TcpProxy(self.cluster.nodes[dst].port)
                    self.proxies[(src, dst)] = proxy
                    self.cluster.peer_urls[(src, dst)] = proxy.url
        self.cluster.start()
        self.alive = {r: True for r in REGIONS}
        self.links = {k: "up" for k in self.proxies}
        self.clients = {r: self.cluster.client(r) for r in REGIONS}
        # Names whose state in a Region the model knows only once messages in flight arrive (a
        # removal, a promotion notice): neither created nor replicated to before the next
        # quiescent point.
        self.settling: set[tuple[str, str]] = set()
        # Copies a forced overwrite may or may not have replaced before the replica was removed
        # again: at the next quiescent point each is either gone or exactly as it was.
        self.unknown: dict[tuple[str, str], Copy] = {}
        # Failed replications (primary Region, name, replica Region) whose blocking copy changed
        # while a forced delivery may still have been on its way: at the next quiescent point
        # each is either still a name clash or, overwritten, an InSync replica.
        self.unsure: set[tuple[str, str, str]] = set()

    def close(self):
        for p in self.proxies.values():
            p.close()
        self.cluster.close()

    def client(self, region):
        return self.clients[region]

    def note(self, text: str):
        self.log.append(f"{len(self.log):4d} {text}")

    def fresh_value(self) -> str:
        self.counter += 1
        return f"value-{self.counter}"

    # -----------------------------------------------------------------------------------------
    # The model's rule for a replica Region that meets an existing name there.

    def replica_outcome(self, name: str, dest: str, force: bool, primary: str) -> str:
        """The final status of replicating `name` to `dest`; updates the model's copy there."""
        there = self.model.get((dest, name))
        # A replica the model expects to be made is settling until a quiescent point has seen
        # it: another primary's delivery to the same name there may arrive first.
        if there is None:
            self.model[(dest, name)] = Copy("replica", primary_region=primary)
            self.settling.add((dest, name))
            return "InSync"
        if there.kind == "replica":
            if there.primary_region == primary:
                return "InSync"
            return "Failed:" + FROM_OTHER.format(name=name)
        if there.replicas:
            return "Failed:" + TO_OTHERS.format(name=name)
        if not force:
            return "Failed:" + CLASH.format(name=name, region=dest)
        self.model[(dest, name)] = Copy("replica", primary_region=primary, replaced=there)
        self.settling.add((dest, name))
        return "InSync"

    def copy_changed(self, region: str, name: str):
        """The copy of `name` in `region` stopped being replicated to (or from) somewhere."""
        for (r, n), c in self.model.items():
            if n == name and c.kind == "primary" and c.replicas.get(region, "").startswith("Failed"):
                self.unsure.add((r, name, region))
                self.settling.add((region, name))

    def clashes_with(self, region: str, name: str) -> bool:
        """Some primary expects a Failed status because of this copy."""
        return any(
            c.kind == "primary" and c.replicas.get(region, "").startswith("Failed")
            for (r, n), c in self.model.items()
            if n == name
        )

    # -----------------------------------------------------------------------------------------
    # Steps

    def step(self):
        ops = [
            (8, self.op_create),
            (20, self.op_put),
            (8, self.op_replicate),
            (4, self.op_remove),
            (4, self.op_promote),
            (4, self.op_delete),
            (3, self.op_restore),
            (3, self.op_kill),
            (6, self.op_restart),
            (4, self.op_cut),
            (8, self.op_heal),
        ]
        total = sum(w for w, _ in ops)
        pick = self.rng.uniform(0, total)
        for weight, op in ops:
            pick -= weight
            if pick <= 0:
                op()
                return
        ops[-1][1]()

    def live(self, region) -> bool:
        return self.alive[region]

    def pick_copy(self, pred):
        found = sorted(
            k for k, c in self.model.items()
            if self.live(k[0]) and k not in self.settling and pred(k, c)
        )
        return self.rng.choice(found) if found else None

    def op_create(self):
        free = [
            (r, n) for r in REGIONS for n in NAMES
            if (r, n) not in self.model and (r, n) not in self.settling and self.live(r)
        ]
        if not free:
            return
        region, name = self.rng.choice(free)
        others = [r for r in REGIONS if r != region and (r, name) not in self.settling]
        reps = [r for r in others if self.rng.random() < 0.4]
        force = self.rng.random() < 0.3
        value = self.fresh_value()
        self.note(f"create {name} in {region} replicas={reps} force={force} -> {value}")
        kw = {"AddReplicaRegions": [{"Region": r} for r in reps]} if reps else {}
        if reps and force:
            kw["ForceOverwriteReplicaSecret"] = True
        self.client(region).create_secret(Name=name, SecretString=value, **kw)
        copy = Copy("primary", value=value, history=[value])
        self.model[(region, name)] = copy
        for r in reps:
            copy.replicas[r] = self.replica_outcome(name, r, force, region)

    def op_put(self):
        key = self.pick_copy(lambda k, c: c.kind == "primary" and not c.deleted)
        if key is None:
            return
        region, name = key
        copy = self.model[key]
        failed = [d for d, st in copy.replicas.items() if st.startswith("Failed")]
        if any((d, name) in self.settling for d in failed):
            return  # the write's sync would meet a name whose removal may not have arrived
        value = self.fresh_value()
        self.note(f"put {name} in {region} -> {value}")
        self.client(region).put_secret_value(SecretId=name, SecretString=value)
        copy.value = value
        copy.history.append(value)
        # Every replica hears of the write; one that failed on a name clash is tried again
        # (without overwriting) and succeeds if the name is free now.
        for dest in failed:
            copy.replicas[dest] = self.replica_outcome(name, dest, False, region)

    def op_replicate(self):
        key = self.pick_copy(lambda k, c: c.kind == "primary" and not c.deleted)
        if key is None:
            return
        region, name = key
        copy = self.model[key]
        # A Region not listed, or a listed one that failed (the retry).
        candidates = [
            r for r in REGIONS
            if r != region and (r, name) not in self.settling
            and (r not in copy.replicas or copy.replicas[r].startswith("Failed"))
        ]
        if not candidates:
            return
        dest = self.rng.choice(candidates)
        force = self.rng.random() < 0.5
        self.note(f"replicate {name} from {region} to {dest} force={force}")
        self.client(region).replicate_secret_to_regions(
            SecretId=name, AddReplicaRegions=[{"Region": dest}], ForceOverwriteReplicaSecret=force
        )
        copy.replicas[dest] = self.replica_outcome(name, dest, force, region)

    def op_remove(self):
        key = self.pick_copy(lambda k, c: c.kind == "primary" and c.replicas and not c.deleted)
        if key is None:
            return
        region, name = key
        copy = self.model[key]
        dest = self.rng.choice(sorted(copy.replicas))
        self.note(f"remove {dest} from {name} in {region}")
        self.client(region).remove_regions_from_replication(SecretId=name, RemoveReplicaRegions=[dest])
        del copy.replicas[dest]
        self.copy_changed(region, name)
        there = self.model.get((dest, name))
        # (A copy that has replicas of its own is never overwritten: "replicated to other
        # regions" refuses even a forced delivery.)
        if (region, name, dest) in self.unsure and there is not None and not there.replicas:
            # A forced overwrite may have replaced the copy there, which this removal then
            # deletes: either it is gone or it is as it was.
            self.unsure.discard((region, name, dest))
            del self.model[(dest, name)]
            self.unknown[(dest, name)] = there
            self.settling.add((dest, name))
            self.copy_changed(dest, name)
            return
        if there is not None and there.kind == "replica" and there.primary_region == region:
            del self.model[(dest, name)]
            self.settling.add((dest, name))
            # The name there is free once the removal arrives: another primary's delivery that
            # failed on it may then make its replica there.
            self.copy_changed(dest, name)
            if there.replaced is not None:
                # A removal cancels a replication that has not been delivered yet.
                self.unknown[(dest, name)] = there.replaced
                self.copy_changed(dest, name)

    def op_promote(self):
        key = self.pick_copy(lambda k, c: c.kind == "replica")
        if key is None:
            return
        region, name = key
        primary = self.model[key].primary_region
        client = self.client(region)
        try:
            described = client.describe_secret(SecretId=name)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException", e
            return  # not created there yet: nothing to promote
        if described.get("PrimaryRegion") != primary:
            return
        self.note(f"promote {name} in {region} (primary {primary})")
        client.stop_replication_to_replica(SecretId=name)
        value = client.get_secret_value(SecretId=name)["SecretString"]
        history = self.model[(primary, name)].history
        assert value in history, f"promoted value {value} was never written in {primary}: {history}"
        self.model[key] = Copy("primary", value=value, history=[value])
        self.model[(primary, name)].replicas.pop(region, None)
        self.copy_changed(region, name)
        # The old primary lists the promoted Region until the notice arrives: until the next
        # quiescent point it is not overwritten by force (it may still count as "replicated to
        # other regions").
        self.settling.add((primary, name))
        self.copy_changed(primary, name)

    def op_delete(self):
        key = self.pick_copy(
            lambda k, c: c.kind == "primary" and not c.replicas and not c.deleted
            and not self.clashes_with(k[0], k[1])
        )
        if key is None:
            return
        region, name = key
        client = self.client(region)
        # The primary may still list a Region promoted meanwhile until it hears of it.
        if client.describe_secret(SecretId=name).get("ReplicationStatus"):
            return
        force = self.rng.random() < 0.6
        self.note(f"delete {name} in {region} force={force}")
        if force:
            client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
            del self.model[key]
        else:
            client.delete_secret(SecretId=name, RecoveryWindowInDays=7)
            self.model[key].deleted = True

    def op_restore(self):
        key = self.pick_copy(lambda k, c: c.deleted)
        if key is None:
            return
        region, name = key
        self.note(f"restore {name} in {region}")
        self.client(region).restore_secret(SecretId=name)
        self.model[key].deleted = False

    def op_kill(self):
        up = [r for r in REGIONS if self.alive[r]]
        if len(up) < 2:
            return
        region = self.rng.choice(up)
        self.note(f"SIGKILL {region}")
        self.cluster.nodes[region].kill()
        self.alive[region] = False

    def op_restart(self):
        down = [r for r in REGIONS if not self.alive[r]]
        if not down:
            return
        region = self.rng.choice(down)
        self.note(f"restart {region}")
        self.cluster.nodes[region].start()
        self.alive[region] = True

    def op_cut(self):
        link = self.rng.choice(sorted(self.proxies))
        how = self.rng.choice(["refuse", "blackhole"])
        self.note(f"link {link[0]}->{link[1]} {how}")
        (self.proxies[link].cut if how == "refuse" else self.proxies[link].stall)()
        self.links[link] = how

    def op_heal(self):
        down = sorted(k for k, v in self.links.items() if v != "up")
        if not down:
            return
        link = self.rng.choice(down)
        self.note(f"link {link[0]}->{link[1]} heal")
        self.proxies[link].restore()
        self.links[link] = "up"

    # -----------------------------------------------------------------------------------------
    # Quiescent points

    def quiesce(self):
        self.note("quiesce")
        for link, state in self.links.items():
            if state != "up":
                self.proxies[link].restore()
                self.links[link] = "up"
        for region in REGIONS:
            if not self.alive[region]:
                self.cluster.nodes[region].start()
                self.alive[region] = True

        def quiet():
            for region in REGIONS:
                text = self.cluster.nodes[region].metrics()
                for dest in REGIONS:
                    if metric(text, "coffer_replication_queue_depth", source=region, destination=dest):
                        return False
            for (region, name), copy in self.model.items():
                if copy.kind != "primary" or not copy.replicas:
                    continue
                status = self.client(region).describe_secret(SecretId=name).get("ReplicationStatus", [])
                if any(s["Status"] == "InProgress" for s in status):
                    return False
            return True

        wait_for(quiet, timeout=60, interval=0.25, what="every queue drained, no replica InProgress")
        for (region, name), before in self.unknown.items():
            if self.state_of(region, name) is not None:
                self.model[(region, name)] = before  # then checked below like any other copy
        self.unknown.clear()
        for region, name, dest in sorted(self.unsure):
            copy = self.model.get((region, name))
            if copy is None or not copy.replicas.get(dest, "").startswith("Failed"):
                continue
            listed = self.client(region).describe_secret(SecretId=name).get("ReplicationStatus", [])
            status = next((s for s in listed if s["Region"] == dest), None)
            if status and status["Status"] == "InSync":
                copy.replicas[dest] = "InSync"
                self.model[(dest, name)] = Copy("replica", primary_region=region)
        self.unsure.clear()
        self.check()
        self.settling.clear()

    def state_of(self, region, name):
        client = self.client(region)
        try:
            described = client.describe_secret(SecretId=name)
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException", e
            return None
        value = None
        if "DeletedDate" not in described:
            value = client.get_secret_value(SecretId=name)["SecretString"]
        stages = {k: sorted(v) for k, v in described.get("VersionIdsToStages", {}).items()}
        return described, value, stages

    def check(self):
        seen = {(r, n): self.state_of(r, n) for r in REGIONS for n in NAMES}
        for (region, name), got in seen.items():
            want = self.model.get((region, name))
            where = f"{name} in {region}"
            if want is None:
                assert got is None, f"{where}: the model has nothing there, Coffer has {got and got[0]}"
                continue
            assert got is not None, f"{where}: expected a {want.kind}, Coffer has nothing"
            described, value, stages = got
            if want.kind == "replica":
                primary = self.model[(want.primary_region, name)]
                assert described.get("PrimaryRegion") == want.primary_region, (where, described)
                p_described, p_value, p_stages = seen[(want.primary_region, name)]
                assert stages == p_stages, f"{where}: versions differ from the primary's"
                if not primary.deleted:
                    assert value == primary.value == p_value, f"{where}: {value} != {primary.value}"
                want.replaced = None
                continue
            # A primary names its own Region while it has replicas; a standalone secret none.
            assert described.get("PrimaryRegion") == (region if want.replicas else None), (where, described)
            assert ("DeletedDate" in described) == want.deleted, (where, described)
            if not want.deleted:
                assert value == want.value, f"{where}: acknowledged {want.value}, Coffer has {value}"
            listed = {s["Region"]: s for s in described.get("ReplicationStatus", [])}
            assert set(listed) == set(want.replicas), f"{where}: lists {sorted(listed)}, expected {sorted(want.replicas)}"
            for dest, expected in want.replicas.items():
                status = listed[dest]
                if expected == "InSync":
                    assert status["Status"] == "InSync", (where, dest, status)
                else:
                    # The clash's exact kind (a standalone secret, one replicated to others,
                    # a replica of another primary) depends on what the name there was when the
                    # last delivery arrived, which the model knows only at call time.
                    assert status["Status"] == "Failed", (where, dest, status)
                    assert any(
                        status["StatusMessage"].startswith(m.format(name=name, region=dest))
                        for m in (CLASH, FROM_OTHER, TO_OTHERS)
                    ), (where, dest, status)


def seeds() -> list[int]:
    if os.environ.get("COFFER_MODEL_SEED"):
        return [int(os.environ["COFFER_MODEL_SEED"], 0)]
    return [FIRST_SEED, *REGRESSION_SEEDS]


@pytest.mark.parametrize("seed", seeds())
def test_replication_matches_the_model_through_faults(seed, tmp_path):
    run = Run(seed, tmp_path / f"seed{seed}")
    started = time.monotonic()
    try:
        for i in range(1, STEPS + 1):
            run.step()
            if i % QUIET_EVERY == 0:
                run.quiesce()
        run.quiesce()
    except BaseException:
        print(f"replication model: seed {seed} (COFFER_MODEL_SEED={seed}) failed after "
              f"{len(run.log)} steps, {time.monotonic() - started:.0f} s:")
        print("\n".join(run.log))
        print(run.cluster.logs())
        raise
    finally:
        run.close()
    print(f"replication model: seed {seed}: {STEPS} steps in {time.monotonic() - started:.0f} s")
