from pytest_axp.ignore import IgnoreRules, is_ignored


def check(text, rel, is_dir=False, base=""):
    return is_ignored([IgnoreRules(text, base)], rel, is_dir)


def test_basename_patterns_match_at_any_depth():
    assert check("*.log", "a.log")
    assert check("*.log", "deep/dir/a.log")
    assert not check("*.log", "a.txt")


def test_anchored_and_dir_only_patterns():
    assert check("/build", "build", True)
    assert not check("/build", "src/build", True)
    assert check("build/", "build", True)
    assert not check("build/", "build", False)  # a file named build is kept
    assert check("build/", "build/x.o")          # files below an ignored dir
    assert check("docs/*.md", "docs/a.md")
    assert not check("docs/*.md", "docs/sub/a.md")


def test_double_star_and_negation():
    assert check("**/cache", "a/b/cache", True)
    assert check("logs/**", "logs/x/y.txt")
    rules = "*.env\n!keep.env\n"
    assert check(rules, "a.env") and not check(rules, "keep.env")


def test_character_classes_comments_and_escapes():
    assert check("file[0-9].txt", "file3.txt") and not check("file[0-9].txt", "filex.txt")
    assert not check("# comment\n", "# comment")
    assert check("\\#literal", "#literal")


def test_nested_file_applies_below_its_folder_only():
    stack = [IgnoreRules("*.tmp", base="sub")]
    assert is_ignored(stack, "sub/a.tmp", False)
    assert not is_ignored(stack, "a.tmp", False)
