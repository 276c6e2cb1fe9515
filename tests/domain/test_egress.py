"""Host-name patterns and the domain policy's decisions."""

import pytest

from sandbay.domain.egress import DomainPolicy, EgressSecret, check_pattern, check_patterns


@pytest.mark.parametrize(
    ("pattern", "normalized"),
    [
        ("PyPI.org", "pypi.org"),
        ("pypi.org.", "pypi.org"),
        ("*.PyPI.org", "*.pypi.org"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_patterns_are_normalized(pattern: str, normalized: str) -> None:
    assert check_pattern(pattern) == normalized


@pytest.mark.parametrize(
    "pattern",
    ["", " ", "*", "*.com", "a.*.com", "pypi.org:443", "https://pypi.org", "pypi.org/simple",
     "-bad.org", "a..b", "x" * 64 + ".org"],
)  # fmt: skip
def test_what_is_not_a_pattern_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match=r"pattern|host name|wildcard"):
        check_pattern(pattern)


def test_a_wildcard_matches_names_under_it_but_not_the_domain_itself() -> None:
    policy = DomainPolicy(allow=tuple(check_patterns(["*.pypi.org", "github.com"])))
    assert policy.allows("files.pypi.org") and policy.allows("a.b.pypi.org")
    assert not policy.allows("pypi.org")
    assert not policy.allows("evilpypi.org") and not policy.allows("pypi.org.evil.com")
    assert policy.allows("GitHub.com.") and not policy.allows("api.github.com")


def test_deny_wins_and_a_deny_list_alone_allows_the_rest() -> None:
    both = DomainPolicy(allow=("*.pypi.org",), deny=("upload.pypi.org",))
    assert both.allows("files.pypi.org") and not both.allows("upload.pypi.org")
    only_deny = DomainPolicy(deny=("*.evil.test",))
    assert only_deny.allows("anything.example") and not only_deny.allows("x.evil.test")
    assert only_deny.default_allow and not both.default_allow


def test_a_secret_is_swapped_only_on_its_hosts() -> None:
    bound = EgressSecret("openai", "sandbay_secret_1", "sk-1", ("api.openai.com",))
    anywhere = EgressSecret("any", "sandbay_secret_2", "v-2")
    policy = DomainPolicy(allow=("*.openai.com",), secrets=(bound, anywhere))
    assert policy.secrets_for("API.openai.com") == (bound, anywhere)
    assert policy.secrets_for("cdn.openai.com") == (anywhere,)
    assert "sk-1" not in repr(bound)
