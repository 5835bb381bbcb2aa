from contacts.models import Contact
from contacts.selectors import opted_out_phones
from tests.contacts.factories import make_contact, phone


def test_opted_out_phones_answers_only_the_opted_out_numbers_asked_about(alice):
    make_contact(alice, 1, opted_out=True)
    make_contact(alice, 2, opted_out=True)
    make_contact(alice, 3)
    asked = [phone(1), phone(3), phone(4)]
    assert opted_out_phones(account=alice, phones=asked) == {phone(1)}


def test_opted_out_phones_ignores_other_accounts(alice, bob):
    make_contact(bob, 1, opted_out=True)
    assert opted_out_phones(account=alice, phones=[phone(1)]) == set()


def test_opted_out_phones_of_nothing_is_empty_without_a_query(alice, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert opted_out_phones(account=alice, phones=[]) == set()


def test_opted_out_phones_handles_repeats_in_the_input(alice):
    make_contact(alice, 1, opted_out=True)
    assert opted_out_phones(account=alice, phones=[phone(1)] * 3) == {phone(1)}


def test_opted_out_phones_splits_long_lists_when_many_contacts_opted_out(
    alice, django_assert_max_num_queries
):
    Contact.objects.bulk_create(
        [
            Contact(account=alice, name=f"C{n}", phone_number=phone(n), opted_out=n % 4 != 3)
            for n in range(8_000)
        ],
        batch_size=500,
    )
    asked = [phone(n) for n in range(0, 8_000, 2)] + [phone(n) for n in range(10_000, 11_000)]
    with django_assert_max_num_queries(8):
        found = opted_out_phones(account=alice, phones=asked)
    assert found == {phone(n) for n in range(0, 8_000, 2) if n % 4 != 3}


def test_opted_out_phones_reads_few_opt_outs_at_once_for_a_long_list(
    alice, django_assert_num_queries
):
    Contact.objects.bulk_create(
        [
            Contact(account=alice, name=f"C{n}", phone_number=phone(n), opted_out=n % 50 == 0)
            for n in range(6_000)
        ],
        batch_size=500,
    )
    make_contact(alice, 9_000_000, opted_out=True)
    asked = [phone(n) for n in range(20_000)]
    with django_assert_num_queries(2):
        found = opted_out_phones(account=alice, phones=asked)
    assert found == {phone(n) for n in range(0, 6_000, 50)}
