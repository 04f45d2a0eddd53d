"""The webhook signature schemes, with a fixed clock so the tolerance edge is exact."""

from __future__ import annotations

import pytest

from app.security.signatures import (
    SignatureProblem,
    sign_hub,
    sign_timetracker,
    verify_hub,
    verify_timetracker,
)

SECRET = "whsec_test"
BODY = b'{"entry_id":"1"}'
NOW = 1_800_000_000.0


@pytest.mark.parametrize("now", [NOW - 300, NOW - 299.5, NOW, NOW + 299.5, NOW + 300])
def test_timetracker_signature_within_300_s_either_way_is_accepted(now):
    verify_timetracker(SECRET, sign_timetracker(SECRET, BODY, int(NOW)), BODY, now=now)


@pytest.mark.parametrize("t_offset", [-301, 301])
def test_timetracker_signature_beyond_300_s_is_refused_naming_the_tolerance(t_offset):
    header = sign_timetracker(SECRET, BODY, int(NOW) + t_offset)
    with pytest.raises(SignatureProblem, match="300 s"):
        verify_timetracker(SECRET, header, BODY, now=NOW)


def test_timetracker_signature_over_another_body_or_secret_is_refused():
    header = sign_timetracker(SECRET, BODY, int(NOW))
    with pytest.raises(SignatureProblem, match="does not match"):
        verify_timetracker(SECRET, header, BODY + b" ", now=NOW)
    with pytest.raises(SignatureProblem, match="does not match"):
        verify_timetracker("other", header, BODY, now=NOW)


def test_any_of_several_v1_values_may_match_during_secret_rotation():
    good = sign_timetracker(SECRET, BODY, int(NOW))
    header = f"t={int(NOW)},v1={'0' * 64},{good.split(',')[1]}"
    verify_timetracker(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=soon,v1=abc"])
def test_malformed_timetracker_headers_name_what_is_wrong(header):
    with pytest.raises(SignatureProblem, match="X-TimeTracker-Signature"):
        verify_timetracker(SECRET, header, BODY, now=NOW)


def test_hub_signature_is_checked_over_the_raw_body():
    verify_hub(SECRET, sign_hub(SECRET, BODY), BODY)
    verify_hub(SECRET, sign_hub(SECRET, BODY).upper().replace("SHA256", "sha256"), BODY)
    for bad in (None, "sha1=abc", "sha256=", sign_hub("other", BODY)):
        with pytest.raises(SignatureProblem, match="X-Hub-Signature"):
            verify_hub(SECRET, bad, BODY)
