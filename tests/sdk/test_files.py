"""Files through the router with the SDK's default runtime (the legacy API's /upload, /download,
/list and /exists), in the shared warm-pool sandbox."""

import hashlib
import os

# A few MiB of bytes that are not text: every byte value, in no pattern.
BINARY = os.urandom(4 * 1024 * 1024 + 123)


def test_files_are_written_read_listed_and_found(sandbox):
    files = sandbox.files
    files.write("notes/hello.txt", "hello from the SDK\n")
    files.write("notes/blob.bin", BINARY)

    assert files.read("notes/hello.txt") == b"hello from the SDK\n"
    assert files.read("notes/blob.bin") == BINARY
    # The bytes are on the sandbox's disk, not only echoed back.
    digest = sandbox.commands.run("sha256sum notes/blob.bin").stdout.split()[0]
    assert digest == hashlib.sha256(BINARY).hexdigest()

    entries = {e.name: e for e in files.list("notes")}
    assert set(entries) == {"hello.txt", "blob.bin"}
    assert (entries["blob.bin"].type, entries["blob.bin"].size) == ("file", len(BINARY))
    assert (entries["hello.txt"].type, entries["hello.txt"].size) == ("file", 19)
    root = {e.name: e.type for e in files.list("")}
    assert root["notes"] == "directory"

    assert files.exists("notes/blob.bin")
    assert files.exists("notes")
    assert not files.exists("notes/missing.txt")


def test_a_file_is_replaced_whole(sandbox):
    sandbox.files.write("replace.txt", "a much longer first version\n")

    sandbox.files.write("replace.txt", "short\n")

    assert sandbox.files.read("replace.txt") == b"short\n"


def test_names_with_spaces_and_non_ascii_characters(sandbox):
    files = sandbox.files
    path = "odd names/naïve café ü #1.txt"

    files.write(path, "ok\n")

    assert files.read(path) == b"ok\n"
    assert files.exists(path)
    assert [e.name for e in files.list("odd names")] == ["naïve café ü #1.txt"]
    assert sandbox.commands.run("cat 'odd names/naïve café ü #1.txt'").stdout == "ok\n"
