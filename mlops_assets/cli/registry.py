"""``mlops registry``, ``mlops deploy``: registered model versions and the releases the gateway follows."""

import argparse
import functools
import json
import sys

from mlops_assets import settings
from mlops_assets.cli._instance import model_registry, platform_resources


def cmd_registry(args: argparse.Namespace) -> int:
    from mlops_assets.core import contracts
    from mlops_assets.core.registry_view import NoSuchVersion, RegistryError

    lay = settings.layout()
    reader = _registry_reader(lay, None if args.registry_cmd == "list" else args.version)
    try:
        if args.registry_cmd == "list":
            for v in reader.versions():
                print(f"v{v.version:<4} {','.join(v.aliases):<22} "
                      f"dataset {v.tags.get(contracts.LINEAGE_DATASET, '?'):<18} "
                      f"roc_auc {v.tags.get('metric.roc_auc', '?')}  run {v.run_id}")
            return 0
        v = reader.version(args.version)
    except NoSuchVersion:  # an unknown version: the user's to fix, not a crash
        print(f"error: model {settings.model_name()!r} has no version {args.version} (see `mlops registry list`)",
              file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps({"name": v.name, "version": v.version, "aliases": v.aliases, "run_id": v.run_id,
                      "source": v.source, "description": v.description, "tags": v.tags}, indent=2))
    return 0


def _registry_reader(lay: settings.Layout, version: str | None):
    """The MLflow-free reader when it can answer exactly as MLflow would (it answers in a fraction of a second,
    importing MLflow alone takes seconds), else MLflow's client."""
    from mlops_assets.core import registry_view

    fast = registry_view.fast_reader(settings.registry_uri(lay), settings.model_name(),
                                     auth=settings.mlflow_http_auth(), customised=settings.mlflow_http_customised())
    if fast is not None and (version is None or registry_view.is_version_number(version)):
        return fast
    return registry_view.ClientReader(model_registry(lay))


def cmd_history(args: argparse.Namespace) -> int:
    """The audit trail of releases, oldest first: one line per move, or a JSON list."""
    from mlops_assets.core.audit import format_line

    entries = model_registry(settings.layout()).audit_trail()
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    print("\n".join(format_line(e) for e in entries) or "no release recorded yet")
    return 0


def cmd_decide(args: argparse.Namespace) -> int:
    """``approve`` / ``reject`` a version held for approval; the approval sensor releases an approved one."""
    from mlflow.exceptions import MlflowException

    from mlops_assets.core.registry import ApprovalError

    registry = model_registry(settings.layout())
    try:
        entry = registry.decide_approval(args.version, approve=args.registry_cmd == "approve", reason=args.reason)
    except ApprovalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MlflowException as exc:  # unknown version, or the server refused the write
        print(f"error: model {registry.model_name!r} v{args.version}: {exc.message}", file=sys.stderr)
        return 2
    then = ("the approval sensor releases it within a minute (`mlops up`), or run approved_release_job"
            if args.registry_cmd == "approve" else "it will never be released")
    done = "approved" if args.registry_cmd == "approve" else "rejected"
    print(f"v{args.version} {done} by {entry['who']} ({args.reason}); {then}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Change the registry (what every gateway follows), then tell the running gateway and wait for it."""
    from mlops_assets.core.registry import NoCanaryError

    res = platform_resources(settings.layout())
    tracking, gateway = res["tracking"], res["gateway"]
    tracking.activate()
    if args.deploy_cmd == "traffic":
        try:
            canary = tracking.set_canary_percent(args.percent, why={"via": "mlops deploy traffic"})
        except (ValueError, NoCanaryError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"canary v{canary} now gets {args.percent:g}% of traffic")
        target = f"canary v{canary} at {args.percent:g}%"
        followed = functools.partial(gateway.wait_for_split, canary, args.percent)
    else:
        from_v, to_v = tracking.rollback(why={"via": "mlops deploy rollback"})
        print(f"champion rolled back: v{from_v} -> v{to_v}")
        target = f"v{to_v}"
        followed = functools.partial(gateway.wait_for_version, to_v)
    if gateway.is_up():
        token = settings.admin_token()
        if token and not gateway.reload(token):
            print(f"warning: the gateway at {gateway.url} refused the reload; it follows at its next poll",
                  file=sys.stderr)
        print(f"gateway at {gateway.url} {'serves' if followed() else 'has NOT yet switched to'} {target}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("registry", help="registered model versions")
    rsub = p.add_subparsers(dest="registry_cmd", required=True)
    rsub.add_parser("list")
    q = rsub.add_parser("show")
    q.add_argument("version")
    p.set_defaults(func=cmd_registry)
    q = rsub.add_parser("history", help="the audit trail of releases: every alias move and approval, oldest first")
    q.add_argument("--json", action="store_true", help="a JSON list instead of one line per move")
    q.set_defaults(func=cmd_history)
    for decision in ("approve", "reject"):
        q = rsub.add_parser(decision, help=f"{decision} a version held for approval (require_approval)")
        q.add_argument("version")
        q.add_argument("--reason", required=True, help="why: recorded in the audit trail with your name")
        q.set_defaults(func=cmd_decide)

    p = sub.add_parser("deploy", help="deployment operations")
    dep = p.add_subparsers(dest="deploy_cmd", required=True)
    dep.add_parser("rollback", help="champion back to the previous version")
    q = dep.add_parser("traffic", help="set the running canary's share of traffic")
    q.add_argument("percent", type=float, help="0 to 100")
    p.set_defaults(func=cmd_deploy)
