"""Golden text for hand-built plans: the exact output a reviewer reads (``expsync plan``)."""

from __future__ import annotations

from expsync.render.text import render_text
from tests.render import plans


def test_create_active_shows_status_path_traffic_and_first_versions() -> None:
    assert render_text(plans.create_active()) == """\
Security-relevant changes (2):
    ! experiment "foo-rc-bakeoff", variant "rc1": new variant: the key from env:FOO_RC1_KEY will be sent to \
https://api.partner.example, an origin this experiment did not use before
    ! experiment "foo-rc-bakeoff", variant "rc2": new variant: the key from env:FOO_RC2_KEY will be sent to \
https://api.partner.example, an origin this experiment did not use before

+ experiment "foo-rc-bakeoff" will be created
    public model id: partner/preview-foo
    status: (new) -> draft -> active
    traffic:
        rc2  (none) -> 50% (1)
        rc1  (none) -> 50% (1)
    routing: partner/preview-foo starts routing to this experiment
    routing: the gateway's membership cache picks this up within about 60 s of the Redis refresh
    + create experiment as draft: name "Foo RC1 vs RC2"
    + add variant "rc1" with weight 1
    + add variant "rc2" with weight 1
    + first version of variant "rc1"
        + upstream.base_url: "https://api.partner.example/v1"
        + upstream.internal_id: "foo-rc1"
        api key: new, from env:FOO_RC1_KEY
    + first version of variant "rc2"
        + upstream.base_url: "https://api.partner.example/v1"
        + upstream.internal_id: "foo-rc2"
        api key: new, from env:FOO_RC2_KEY
    > activate: draft -> active
    cache: ai-gateway.model-experiments:experimented-public-ids
    cache: ai-gateway.model-experiments:by-public-id:partner/preview-foo

Plan: 1 to create, 0 to update, 0 to transition, 0 to delete."""


def test_hot_swap_on_active_shows_upstream_field_diff_and_unchanged_key() -> None:
    assert render_text(plans.hot_swap_on_active()) == """\
~ experiment "foo-rc-bakeoff" will be updated
    public model id: partner/preview-foo
    status: active
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    routing: variant 'rc2': its traffic moves to the new upstream version immediately
    + new version of variant "rc2"
        ~ upstream.internal_id: "foo-rc2" -> "foo-rc3"
        api key: unchanged, from env:FOO_RC2_KEY
    cache: ai-gateway.model-experiments:by-public-id:partner/preview-foo

Plan: 0 to create, 1 to update, 0 to transition, 0 to delete."""


def test_no_secrets_says_why_the_key_is_unknown_and_that_apply_is_impossible() -> None:
    assert render_text(plans.no_secrets()) == """\
warning: api keys were not compared (--no-secrets): key changes show as unknown and this plan cannot be applied [W503]
    hint: keys are reported as unknown

~ experiment "foo-rc-bakeoff" will be updated
    public model id: partner/preview-foo
    status: active
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    routing: variant 'rc2': its traffic moves to the new upstream version immediately
    + new version of variant "rc2"
        ~ upstream.internal_id: "foo-rc2" -> "foo-rc3"
        api key: unknown (not compared: --no-secrets), from env:FOO_RC2_KEY
    cache: ai-gateway.model-experiments:by-public-id:partner/preview-foo

Plan: 0 to create, 1 to update, 0 to transition, 0 to delete.
This plan cannot be applied: api keys were not compared (--no-secrets)."""


def test_transitions_show_routing_impact_and_weighted_shares() -> None:
    assert render_text(plans.transitions()) == """\
~ experiment "bar" will change status
    public model id: partner/bar
    status: active -> paused
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    routing: requests to partner/bar will be refused while paused (no fall-through)
    > pause: active -> paused
    cache: ai-gateway.model-experiments:by-public-id:partner/bar

~ experiment "baz" will change status
    public model id: partner/baz
    status: paused -> completed
    archived: false -> true
    traffic (unchanged): rc1 50% (1), rc2 50% (1)
    routing: requests to partner/baz are no longer refused; normal routing resumes
    routing: the gateway's membership cache picks this up within about 60 s of the Redis refresh
    > complete: paused -> completed
    ~ archive: archived false -> true
    cache: ai-gateway.model-experiments:experimented-public-ids
    cache: ai-gateway.model-experiments:by-public-id:partner/baz

~ experiment "foo-rc-bakeoff" will change status
    public model id: partner/preview-foo
    status: draft -> active
    traffic:
        rc2  50% (1) -> 25% (1)
        rc1  50% (1) -> 75% (3)
    routing: partner/preview-foo starts routing to this experiment
    routing: the gateway's membership cache picks this up within about 60 s of the Redis refresh
    ~ weight of variant "rc1": 1 -> 3
    > activate: draft -> active
    cache: ai-gateway.model-experiments:experimented-public-ids
    cache: ai-gateway.model-experiments:by-public-id:partner/preview-foo

Plan: 0 to create, 0 to update, 3 to transition, 0 to delete."""


def test_refused_plan_lists_errors_and_ends_with_refusal() -> None:
    assert render_text(plans.refused()) == """\
error: experiments/foo-rc-bakeoff.yaml:8:13: variants[0].weight: weight change 1 -> 3: not allowed while active (allowed in: draft) [E303]
    hint: create a new experiment (new key)
error: experiments/old.yaml:4:9: status: no transition from completed to active [E301]
    hint: completed is terminal: create a new experiment (new key) instead

~ experiment "foo-rc-bakeoff" will be updated
    public model id: partner/preview-foo
    status: active
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    ~ name: "Foo RC1 vs RC2" -> "Foo, re-weighted"
    cache: ai-gateway.model-experiments:by-public-id:partner/preview-foo

# experiment "old" bookkeeping only
    public model id: partner/old
    status: completed
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    # refresh expsync's ownership record (no gateway change)

Plan refused: 2 error(s)."""


def test_drift_section_comes_first_and_marks_protective_changes() -> None:
    assert render_text(plans.drift()) == """\
Changes made outside git:
    ~ foo-rc-bakeoff: name "Foo RC1 vs RC2" -> "Renamed in the UI" (this plan restores git's value)
    ! qux: status "active" -> "paused" (protective: expsync never undoes it silently)

warning: experiments/foo-rc-bakeoff.yaml:1:1: name: name was changed to 'Renamed in the UI' outside git; the plan reverts it to 'Foo RC1 vs RC2' [W501]
    hint: update the YAML to keep the change
error: experiments/qux.yaml:4:9: status: status was changed to 'paused' outside git (last applied: 'active'); expsync will not undo a protective change [E501]
    hint: set status: paused in the YAML to acknowledge it

~ experiment "foo-rc-bakeoff" will be updated
    public model id: partner/preview-foo
    status: active
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    ~ name: "Renamed in the UI" -> "Foo RC1 vs RC2"
    cache: ai-gateway.model-experiments:by-public-id:partner/preview-foo

Plan refused: 1 error(s)."""


def test_delete_and_release_of_removed_yaml() -> None:
    assert render_text(plans.delete_and_release()) == """\
# experiment "foo-rc-bakeoff" bookkeeping only
    public model id: partner/preview-foo
    status: completed
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    # stop managing: completed and archived; removed from git (database rows stay)

- experiment "scratch" will be deleted
    public model id: partner/scratch
    status: draft -> (deleted)
    traffic:
        rc2  50% (1) -> (none)
        rc1  50% (1) -> (none)
    - delete experiment (draft; its variants and versions go with it)
    cache: ai-gateway.model-experiments:by-public-id:partner/scratch

Plan: 0 to create, 0 to update, 0 to transition, 1 to delete, 1 bookkeeping only."""


def test_draft_edits_relabel_add_remove_reweight_and_rename() -> None:
    assert render_text(plans.relabel_in_draft()) == """\
~ experiment "edit" will be updated
    public model id: partner/old-id -> partner/new-id
    status: draft
    traffic:
        A (renamed)  33.3% (1) -> 25% (1)
        c            (none) -> 25% (1)
        b            33.3% (1) -> 50% (2)
        gone         33.3% (1) -> (none)
    ~ name: "N" -> "Renamed"
    ~ description: null -> "now described"
    ~ public_model_id: "partner/old-id" -> "partner/new-id"
    - remove variant "gone" (weight 1; its versions go with it)
    ~ relabel variant "a" -> "A (renamed)"
    + add variant "c" with weight 1
    ~ weight of variant "b": 1 -> 2
    + first version of variant "c"
        + upstream.base_url: "https://api.example/v1"
        + upstream.extra_body: {"t":0.2}
        + upstream.internal_id: "m"
        api key: new, from env:K
    cache: ai-gateway.model-experiments:by-public-id:partner/new-id
    cache: ai-gateway.model-experiments:by-public-id:partner/old-id

Plan: 0 to create, 1 to update, 0 to transition, 0 to delete."""


def test_adoption_is_bookkeeping_only() -> None:
    assert render_text(plans.adopted()) == """\
# experiment "foo-rc-bakeoff" bookkeeping only
    public model id: partner/preview-foo
    status: active
    traffic (unchanged): rc2 50% (1), rc1 50% (1)
    # adopt: expsync starts managing this experiment
    note: expsync starts managing this existing experiment (adopted by id)

Plan: 0 to create, 0 to update, 0 to transition, 0 to delete, 1 bookkeeping only."""



def test_no_changes() -> None:
    assert render_text(plans.no_changes()) == "No changes. The database matches the YAML."


def test_colour_only_when_asked() -> None:
    plan = plans.transitions()
    assert "\x1b[" not in render_text(plan)
    coloured = render_text(plan, color=True)
    assert "\x1b[33m~\x1b[0m" in coloured and "\x1b[33m>\x1b[0m" in coloured
    assert _strip_ansi(coloured) == _strip_ansi(render_text(plan))


def test_refusal_is_red_when_coloured() -> None:
    assert "\x1b[31mPlan refused: 2 error(s).\x1b[0m" in render_text(plans.refused(), color=True)


def test_control_characters_from_yaml_cannot_reach_the_terminal() -> None:
    plan = plans.label_with_escape()
    out = render_text(plan, color=False)
    assert "\x1b" not in out and "\\u001b" in out


def _strip_ansi(s: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", s)


def test_a_share_that_rounds_to_0_or_100_is_not_shown_as_all_or_nothing() -> None:
    # 9999:1 routes 99.99% / 0.01% (JSON: percent 99.99 / 0.01); "100%" / "0%" read as all/none
    text = render_text(plans.lopsided())
    assert "rc1  (none) -> >99.9% (9999)" in text
    assert "rc2  (none) -> <0.1% (1)" in text
