"""ListSecrets: entries, order, pagination, IncludePlannedDeletion and every filter
(spec §4.7). Each test has a server of its own, so listings are exact."""

import time

import pytest

from helpers import body_keys, expect_error, unique


@pytest.fixture
def ls(fresh_server):
    return fresh_server.client()


def names(client, **kwargs):
    return [entry["Name"] for entry in client.list_secrets(**kwargs)["SecretList"]]


def filtered(client, *filters, **kwargs):
    return set(names(client, Filters=[{"Key": k, "Values": list(v)} for k, v in filters], **kwargs))


def test_list_secrets_on_an_empty_region_is_an_empty_list(ls):
    listing = ls.list_secrets()
    assert body_keys(listing) == {"SecretList"}
    assert listing["SecretList"] == []


def test_list_secrets_entry_shows_exactly_the_recorded_fields(ls):
    created = ls.create_secret(Name="entry", SecretString="v", Description="described")
    [entry] = ls.list_secrets()["SecretList"]
    assert set(entry) == {"ARN", "CreatedDate", "Description", "LastChangedDate", "Name", "SecretVersionsToStages"}
    assert entry["ARN"] == created["ARN"]
    assert entry["SecretVersionsToStages"] == {created["VersionId"]: ["AWSCURRENT"]}
    assert "VersionIdsToStages" not in entry
    assert "ReplicationStatus" not in entry and "PrimaryRegion" not in entry


def test_list_secrets_entry_shows_tags_and_last_accessed_date_once_set(ls):
    ls.create_secret(Name="tagged", SecretString="v", Tags=[{"Key": "team", "Value": "core"}])
    ls.get_secret_value(SecretId="tagged")
    [entry] = ls.list_secrets()["SecretList"]
    assert entry["Tags"] == [{"Key": "team", "Value": "core"}]
    assert "LastAccessedDate" in entry


def test_secret_without_value_is_listed_without_a_version_map(ls):
    ls.create_secret(Name="empty")
    [entry] = ls.list_secrets()["SecretList"]
    assert "SecretVersionsToStages" not in entry


def test_list_secrets_shows_oldest_first_by_default(ls):
    order = ["b-first", "a-second", "c-third"]
    for n in order:
        ls.create_secret(Name=n, SecretString="v")
        time.sleep(0.01)
    assert names(ls) == order
    assert names(ls, SortOrder="asc") == order
    assert names(ls, SortOrder="desc") == list(reversed(order))


def test_list_secrets_sorts_by_name_when_asked(ls):
    for n in ["b", "c", "a"]:
        ls.create_secret(Name=n, SecretString="v")
    assert names(ls, SortBy="name") == ["a", "b", "c"]
    assert names(ls, SortBy="name", SortOrder="desc") == ["c", "b", "a"]


def test_a_secret_read_just_now_sorts_by_its_last_accessed_date_at_once(ls):
    # The day of a read is written behind the read; a listing writes the waiting days first.
    for n in ["never-1", "read", "never-2"]:
        ls.create_secret(Name=n, SecretString="v")
    ls.get_secret_value(SecretId="read")
    assert names(ls, SortBy="last-accessed-date", SortOrder="desc")[0] == "read"
    assert names(ls, SortBy="last-accessed-date", SortOrder="asc")[-1] == "read"


def test_list_secrets_pages_with_max_results_and_next_token(ls):
    created = [f"page-{i}" for i in range(5)]
    for n in created:
        ls.create_secret(Name=n, SecretString="v")
    seen, sizes, kwargs = [], [], {"MaxResults": 2}
    while True:
        page = ls.list_secrets(**kwargs)
        sizes.append(len(page["SecretList"]))
        seen += [e["Name"] for e in page["SecretList"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert sizes == [2, 2, 1]
    assert seen == created


def test_list_secrets_paginator_walks_every_page(ls):
    for i in range(7):
        ls.create_secret(Name=f"p{i}", SecretString="v")
    pages = list(ls.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 3}))
    assert [len(p["SecretList"]) for p in pages] == [3, 3, 1]
    assert [e["Name"] for p in pages for e in p["SecretList"]] == [f"p{i}" for i in range(7)]


def test_list_secrets_pages_keep_the_filters(ls):
    for i in range(4):
        ls.create_secret(Name=f"keep-{i}", SecretString="v")
        ls.create_secret(Name=f"drop-{i}", SecretString="v")
    filters = [{"Key": "name", "Values": ["keep"]}]
    first = ls.list_secrets(Filters=filters, MaxResults=3)
    second = ls.list_secrets(Filters=filters, MaxResults=3, NextToken=first["NextToken"])
    assert [e["Name"] for e in first["SecretList"] + second["SecretList"]] == [f"keep-{i}" for i in range(4)]
    assert "NextToken" not in second


def test_list_secrets_with_a_made_up_next_token_gets_invalid_next_token(ls):
    ls.create_secret(Name="x", SecretString="v")
    # AWS documents the code only; the text is the server's (list_secrets.rs).
    expect_error(ls.list_secrets, "InvalidNextTokenException", "The NextToken value is invalid.", NextToken="garbage")


def test_the_next_page_starts_after_the_last_secret_shown_even_when_earlier_ones_went_away(ls):
    # The token holds a position in the sort order, not an offset: deleting a secret of the
    # first page neither skips nor repeats one on the next page.
    for n in range(6):
        ls.create_secret(Name=f"keyset-{n}", SecretString="v")
    first = ls.list_secrets(SortBy="name", MaxResults=3)
    assert [e["Name"] for e in first["SecretList"]] == ["keyset-0", "keyset-1", "keyset-2"]
    ls.delete_secret(SecretId="keyset-0", ForceDeleteWithoutRecovery=True)
    second = ls.list_secrets(SortBy="name", MaxResults=3, NextToken=first["NextToken"])
    assert [e["Name"] for e in second["SecretList"]] == ["keyset-3", "keyset-4", "keyset-5"]
    assert "NextToken" not in second


def test_a_next_token_only_continues_the_listing_it_came_from(ls):
    for n in range(3):
        ls.create_secret(Name=f"foreign-{n}", SecretString="v")
    token = ls.list_secrets(MaxResults=1)["NextToken"]
    message = "The NextToken value is invalid."
    expect_error(ls.list_secrets, "InvalidNextTokenException", message, NextToken=token, SortOrder="desc")
    expect_error(ls.list_secrets, "InvalidNextTokenException", message, NextToken=token, SortBy="name")
    for call in [ls.list_secrets, ls.batch_get_secret_value]:
        expect_error(call, "InvalidNextTokenException", message, NextToken=token, Filters=[{"Key": "name", "Values": ["foreign"]}])
    assert len(ls.list_secrets(MaxResults=1, NextToken=token)["SecretList"]) == 1


def test_every_sort_order_pages_through_every_secret_once(ls):
    for n in range(7):
        ls.create_secret(Name=f"order-{n % 3}-{n}", SecretString="v")
    ls.get_secret_value(SecretId="order-1-4")
    for sort_by in ["created-date", "name", "last-changed-date", "last-accessed-date"]:
        for order in ["asc", "desc"]:
            whole = [e["ARN"] for e in ls.list_secrets(SortBy=sort_by, SortOrder=order)["SecretList"]]
            paged, kwargs = [], {"SortBy": sort_by, "SortOrder": order, "MaxResults": 2}
            while True:
                page = ls.list_secrets(**kwargs)
                paged += [e["ARN"] for e in page["SecretList"]]
                if "NextToken" not in page:
                    break
                kwargs["NextToken"] = page["NextToken"]
            assert paged == whole and len(set(whole)) == 7, (sort_by, order)


def test_secrets_scheduled_for_deletion_are_listed_only_with_include_planned_deletion(ls):
    ls.create_secret(Name="alive", SecretString="v")
    ls.create_secret(Name="doomed", SecretString="v")
    ls.delete_secret(SecretId="doomed", RecoveryWindowInDays=7)
    assert names(ls) == ["alive"]
    assert names(ls, IncludePlannedDeletion=False) == ["alive"]
    entries = {e["Name"]: e for e in ls.list_secrets(IncludePlannedDeletion=True)["SecretList"]}
    assert set(entries) == {"alive", "doomed"}
    assert "DeletedDate" in entries["doomed"]
    assert "DeletedDate" not in entries["alive"]


def test_force_deleted_secrets_are_not_listed_at_all(ls):
    ls.create_secret(Name="gone", SecretString="v")
    ls.delete_secret(SecretId="gone", ForceDeleteWithoutRecovery=True)
    assert names(ls, IncludePlannedDeletion=True) == []


# --- Filters ------------------------------------------------------------------------------


@pytest.fixture
def four_paths(ls):
    for n in ["testing1/one-x", "/testing2/two-x", "testing3/three-x", "/testing4/four-x"]:
        ls.create_secret(Name=n, SecretString="v")
    return ls


def test_name_filter_is_a_prefix_of_the_whole_name(four_paths):
    assert filtered(four_paths, ("name", ["/"])) == {"/testing2/two-x", "/testing4/four-x"}
    assert filtered(four_paths, ("name", ["testing"])) == {"testing1/one-x", "testing3/three-x"}
    assert filtered(four_paths, ("name", ["/testing2/two-x"])) == {"/testing2/two-x"}


def test_name_filter_negation_returns_the_others(four_paths):
    assert filtered(four_paths, ("name", ["!/"])) == {"testing1/one-x", "testing3/three-x"}


def test_name_filter_takes_spaces_literally(four_paths):
    assert filtered(four_paths, ("name", ["testing1 one"])) == set()


def test_name_filter_is_case_sensitive(four_paths):
    assert filtered(four_paths, ("name", ["Testing1"])) == set()


def test_name_filter_does_not_match_the_middle_of_a_name(four_paths):
    assert filtered(four_paths, ("name", ["one"])) == set()


@pytest.fixture
def four_descriptions(ls):
    for n, d in [("s1", "a secret"), ("s2", "an secret"), ("s3", "asecret"), ("s4", "thesecret")]:
        ls.create_secret(Name=n, SecretString="v", Description=d)
    return ls


def test_description_filter_matches_word_prefixes(four_descriptions):
    assert filtered(four_descriptions, ("description", ["a"])) == {"s1", "s2", "s3"}


def test_description_filter_is_case_insensitive(four_descriptions):
    assert filtered(four_descriptions, ("description", ["A"])) == {"s1", "s2", "s3"}
    assert filtered(four_descriptions, ("description", ["THESECRET"])) == {"s4"}


def test_description_filter_needs_every_word_to_prefix_a_word(four_descriptions):
    assert filtered(four_descriptions, ("description", ["a secret"])) == {"s1", "s2"}


def test_description_filter_negation(four_descriptions):
    assert filtered(four_descriptions, ("description", ["!a"])) == {"s4"}
    assert filtered(four_descriptions, ("description", ["!c"])) == {"s1", "s2", "s3", "s4"}


def test_description_filter_words_may_match_any_word_in_any_order(ls):
    ls.create_secret(Name="d1", SecretString="v", Description="one two")
    ls.create_secret(Name="d2", SecretString="v", Description="one and two")
    ls.create_secret(Name="d3", SecretString="v", Description="three")
    assert filtered(ls, ("description", ["one two"])) == {"d1", "d2"}
    assert filtered(ls, ("description", ["o t"])) == {"d1", "d2"}


def test_values_within_one_filter_are_ored(ls):
    for n in ["alpha-one", "alpha-two", "beta", "gamma"]:
        ls.create_secret(Name=n, SecretString="v")
    assert filtered(ls, ("name", ["alpha", "beta"])) == {"alpha-one", "alpha-two", "beta"}


def test_filters_are_anded_even_with_the_same_key(ls):
    for n in ["alpha-one", "alpha-two", "beta"]:
        ls.create_secret(Name=n, SecretString="v")
    assert filtered(ls, ("name", ["alpha"]), ("name", ["alpha-t"])) == {"alpha-two"}
    assert filtered(ls, ("name", ["alpha"]), ("name", ["beta"])) == set()


def test_filters_of_different_keys_are_anded(ls):
    ls.create_secret(Name="app-db", SecretString="v", Tags=[{"Key": "env", "Value": "prod"}])
    ls.create_secret(Name="app-cache", SecretString="v", Tags=[{"Key": "env", "Value": "dev"}])
    ls.create_secret(Name="other-db", SecretString="v", Tags=[{"Key": "env", "Value": "prod"}])
    assert filtered(ls, ("name", ["app"]), ("tag-value", ["prod"])) == {"app-db"}


@pytest.fixture
def tagged(ls):
    ls.create_secret(Name="t1", SecretString="v", Tags=[{"Key": "Environment", "Value": "Production"}])
    ls.create_secret(Name="t2", SecretString="v", Tags=[{"Key": "environment", "Value": "staging"}])
    ls.create_secret(Name="t3", SecretString="v", Tags=[{"Key": "team", "Value": "Prod-support"}])
    ls.create_secret(Name="t4", SecretString="v")
    return ls


def test_tag_key_filter_is_a_case_sensitive_prefix(tagged):
    assert filtered(tagged, ("tag-key", ["Env"])) == {"t1"}
    assert filtered(tagged, ("tag-key", ["env"])) == {"t2"}
    assert filtered(tagged, ("tag-key", ["team"])) == {"t3"}
    assert filtered(tagged, ("tag-key", ["ironment"])) == set()


def test_tag_value_filter_is_a_case_sensitive_prefix(tagged):
    assert filtered(tagged, ("tag-value", ["Prod"])) == {"t1", "t3"}
    assert filtered(tagged, ("tag-value", ["prod"])) == set()
    assert filtered(tagged, ("tag-value", ["staging"])) == {"t2"}


def test_tag_key_negation_includes_untagged_secrets(tagged):
    assert filtered(tagged, ("tag-key", ["!Env"])) == {"t2", "t3", "t4"}


def test_primary_region_and_owning_service_match_no_ordinary_secret(ls):
    ls.create_secret(Name="plain", SecretString="v")
    assert filtered(ls, ("primary-region", ["us-east-1"])) == set()
    assert filtered(ls, ("owning-service", ["rds"])) == set()
    assert filtered(ls, ("owning-service", ["!rds"])) == {"plain"}


@pytest.fixture
def words(ls):
    ls.create_secret(Name="SecretOne", SecretString="v")
    ls.create_secret(Name="plain", SecretString="v", Description="COMPANYthings here")
    ls.create_secret(Name="other_name", SecretString="v", Tags=[{"Key": "Environment", "Value": "Production"}])
    ls.create_secret(Name="path/to.my+secret=x@y-z", SecretString="v")
    return ls


@pytest.mark.parametrize(
    "value, expected",
    [
        ("sec", {"SecretOne", "path/to.my+secret=x@y-z"}),  # word prefix, case-insensitive
        ("one", {"SecretOne"}),  # split at the lower-to-upper change
        ("ret", set()),  # not the middle of a word
        ("pany", set()),
        ("compan", {"plain"}),  # COMPANYthings -> COMPAN, Ythings
        ("ythings", {"plain"}),
        ("here", {"plain"}),  # a word of the description
        ("env", {"other_name"}),  # a tag key
        ("prod", {"other_name"}),  # a tag value
        ("name", {"other_name"}),  # split at "_"
        ("my", {"path/to.my+secret=x@y-z"}),  # split at / . + = @ -
        ("z", {"path/to.my+secret=x@y-z"}),
        ("+", set()),  # bare punctuation matches nothing
        ("!sec", {"plain", "other_name"}),
    ],
)
def test_all_filter_matches_word_prefixes_of_name_description_and_tags(words, value, expected):
    assert filtered(words, ("all", [value])) == expected


def test_unknown_filter_key_gets_validation_error(ls):
    expect_error(
        ls.list_secrets,
        "ValidationException",
        "1 validation error detected: Value 'bogus' at 'filters.1.member.key' failed to satisfy constraint: "
        "Member must satisfy enum value set: [description, name, tag-key, tag-value, primary-region, owning-service, all]",
        Filters=[{"Key": "bogus", "Values": ["x"]}],
    )


def test_filter_without_values_gets_invalid_parameter(ls):
    # [E] moto's wording.
    expect_error(
        ls.list_secrets,
        "InvalidParameterException",
        "Invalid filter values for key: name",
        Filters=[{"Key": "name"}],
    )


def test_filters_combine_with_include_planned_deletion(ls):
    ls.create_secret(Name="keep-alive", SecretString="v")
    ls.create_secret(Name="keep-doomed", SecretString="v")
    ls.create_secret(Name="other-doomed", SecretString="v")
    ls.delete_secret(SecretId="keep-doomed")
    ls.delete_secret(SecretId="other-doomed")
    assert filtered(ls, ("name", ["keep"])) == {"keep-alive"}
    assert filtered(ls, ("name", ["keep"]), IncludePlannedDeletion=True) == {"keep-alive", "keep-doomed"}


def test_a_region_lists_only_its_own_secrets(fresh_server):
    east, west = fresh_server.client("us-east-1"), fresh_server.client("us-west-2")
    east.create_secret(Name="east-only", SecretString="v")
    west.create_secret(Name="west-only", SecretString="v")
    assert names(east) == ["east-only"]
    assert names(west) == ["west-only"]
    assert names(fresh_server.client("eu-west-1")) == []


def test_the_region_listing_shows_secrets_of_unique_names(ls):
    created = {unique() for _ in range(3)}
    for n in created:
        ls.create_secret(Name=n, SecretString="v")
    assert set(names(ls)) == created
