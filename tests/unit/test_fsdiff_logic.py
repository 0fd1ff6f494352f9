from pytest_axp.record.fsdiff import (
    Entry,
    classify,
    flatten,
    is_text,
    parse_listing,
    unified_patch,
)


def test_listing_survives_odd_names():
    raw = (b"a.txt\x005\x001700000000.5\x00644\x00f\x00"
           b"dir/with\ttab and\nnewline\x0012\x001700000001.0\x00755\x00f\x00"
           b"link\x001\x001700000002.0\x00777\x00l\x00")
    got = parse_listing(raw)
    assert got["a.txt"] == Entry(5, "1700000000.5", 0o644, "f")
    assert got["dir/with\ttab and\nnewline"].mode == 0o755
    assert got["link"].kind == "l"


def test_classify():
    old = {"same": Entry(1, "1", 0o644, "f"), "gone": Entry(1, "1", 0o644, "f"),
           "touched": Entry(1, "1", 0o644, "f"), "chmod": Entry(1, "1", 0o644, "f")}
    new = {"same": Entry(1, "1", 0o644, "f"), "new": Entry(2, "2", 0o644, "f"),
           "touched": Entry(1, "2", 0o644, "f"), "chmod": Entry(1, "1", 0o755, "f")}
    assert classify(old, new) == {"chmod": "modified", "gone": "deleted", "new": "added",
                                  "touched": "modified"}


def test_flatten_and_text_detection():
    assert flatten("src/model.py") == "src_model.py"
    assert is_text("héllo\n".encode())
    assert not is_text(b"a\x00b")
    assert not is_text(b"\xff\xfe")


def test_patches_for_add_modify_delete():
    assert unified_patch("x.txt", None, b"one\n") == (
        "--- /dev/null\n+++ b/x.txt\n@@ -0,0 +1 @@\n+one\n")
    assert unified_patch("x.txt", b"one\ntwo\n", b"one\nTWO\n") == (
        "--- a/x.txt\n+++ b/x.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+TWO\n")
    assert unified_patch("x.txt", b"bye\n", None) == (
        "--- a/x.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n")
    assert unified_patch("x", b"a", b"b").endswith("+b\n\\ No newline at end of file\n")


def test_sums_of_odd_names():
    from pytest_axp.record.fsdiff import parse_sums

    raw = (b"aa  plain.txt\n"
           b"\\bb  new\\nline\\\\back\n"
           b"cc  two  spaces\n")
    assert parse_sums(raw) == {"plain.txt": "aa", "new\nline\\back": "bb",
                               "two  spaces": "cc"}
