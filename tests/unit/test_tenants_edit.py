"""The lifecycle verbs' edit of the tenants list (tenancy_tenants_edit): the new list, or
an error naming the tenant, before the planner or the tenants file sees it."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from tenancy_tenants_edit import tenancy_tenants_edit

CURRENT = [
    {"name": "companyA", "port": 30001, "rpm_limit": 600},
    {"name": "companyB", "port": 30002},
]


def test_add_appends_the_new_tenant_with_its_fields():
    new = tenancy_tenants_edit(CURRENT, "add", "companyC", {"port": 30003, "gpu_memory": "2G"})
    assert new == [*CURRENT, {"name": "companyC", "port": 30003, "gpu_memory": "2G"}]


def test_update_merges_fields_into_that_tenant_only():
    new = tenancy_tenants_edit(CURRENT, "update", "companya", {"rpm_limit": 120})
    assert new == [{"name": "companyA", "port": 30001, "rpm_limit": 120}, CURRENT[1]]
    assert CURRENT[0]["rpm_limit"] == 600, "the input list is not changed"


def test_remove_marks_the_tenant_absent_and_keeps_the_others():
    new = tenancy_tenants_edit(CURRENT, "remove", "companyB")
    assert new == [CURRENT[0], {"name": "companyB", "port": 30002, "state": "absent"}]


@pytest.mark.parametrize(
    ("verb", "tenant", "fields", "message"),
    [
        ("add", "companya", {"port": 30003}, "tenant companya already exists (companyA); change it with"),
        ("update", "nobody", {"rpm_limit": 1}, "unknown tenant nobody; tenants are: companyA, companyB"),
        ("remove", "nobody", {}, "unknown tenant nobody; tenants are: companyA, companyB"),
        ("update", "companyA", {}, "nothing to update for tenant companyA: give the fields to change, e.g. -e rpm"),
        ("update", "", {"rpm_limit": 1}, "Name the tenant with -e tenant=NAME."),
        ("rename", "companyA", {}, "verb 'rename' is not one of add, update, remove"),
    ],
)
def test_a_bad_edit_names_the_tenant_and_what_to_do(verb, tenant, fields, message):
    with pytest.raises(AnsibleFilterError, match=None) as excinfo:
        tenancy_tenants_edit(CURRENT, verb, tenant, fields)
    assert message in str(excinfo.value)


def test_an_update_without_fields_lists_the_fields_it_takes():
    with pytest.raises(AnsibleFilterError) as excinfo:
        tenancy_tenants_edit(CURRENT, "update", "companyA", {}, ["rpm_limit", "gpu_memory"])
    assert str(excinfo.value).endswith("(fields: rpm_limit, gpu_memory)")


def test_removing_from_an_empty_file_says_there_are_no_tenants():
    with pytest.raises(AnsibleFilterError, match="tenants are: none"):
        tenancy_tenants_edit([], "remove", "companyA")


# --- tenancy_tenant_entry: the entry under the name the file uses ----------------------


def test_the_entry_is_found_ignoring_case_and_keeps_the_files_spelling():
    from tenancy_tenant_entry import tenancy_tenant_entry

    tenants = [{"name": "companyA", "port": 30001}, {"name": "companyB", "port": 30002}]
    assert tenancy_tenant_entry(tenants, "COMPANYb") == {"name": "companyB", "port": 30002}


@pytest.mark.parametrize(
    ("tenants", "tenant", "message"),
    [
        ([{"name": "companyA"}], "companyZ", "unknown tenant companyZ; tenants are: companyA"),
        ([], "companyZ", "unknown tenant companyZ; tenants are: none"),
        ([{"name": "companyA"}], "", "Name the tenant with -e tenant=NAME."),
        ("companyA", "companyA", "tenancy_tenant_entry: the tenants list is str, not a list"),
    ],
)
def test_an_unknown_or_missing_name_fails_naming_it(tenants, tenant, message):
    from tenancy_tenant_entry import tenancy_tenant_entry

    with pytest.raises(AnsibleFilterError) as error:
        tenancy_tenant_entry(tenants, tenant)
    assert str(error.value) == message
