//! Turning the legacy API's command string into something to run.
//!
//! Upstream's legacy runtime splits the string with POSIX shell quoting rules and runs the words
//! without a shell, while sandboxd (and the SDK's sandboxd mode) runs `/bin/sh -c <string>`. So
//! upstream gives two different answers for `echo a | wc -c`. Here a command made only of plain
//! words (quoted or not) is split and run directly, which is exactly what the shell would run, and
//! any command that uses a shell feature (pipes, redirection, variables, globs, `;`, `&&`,
//! assignments, comments, …) is run with `/bin/sh -c`, so both surfaces agree on every command.

use std::str::Chars;

/// How to run a command string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Run these words directly: the first is the program.
    Direct(Vec<String>),
    /// The string uses shell syntax: run it with `/bin/sh -c`.
    Shell(String),
}

impl Plan {
    /// The argument vector to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Plan::Direct(words) => words.clone(),
            Plan::Shell(script) => vec!["/bin/sh".to_owned(), "-c".to_owned(), script.clone()],
        }
    }
}

/// Why a command string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// Nothing to run.
    #[error("the command is empty")]
    Empty,
    /// A quote was opened and never closed.
    #[error("the command has an unterminated {0} quote")]
    Unterminated(&'static str),
    /// A trailing backslash escapes nothing.
    #[error("the command ends with an escaping backslash")]
    TrailingBackslash,
    /// NUL bytes cannot be passed to a program.
    #[error("the command contains a NUL byte")]
    Nul,
}

/// Characters that mean something to the shell when they are not quoted.
fn is_shell_special(c: char) -> bool {
    matches!(
        c,
        '|' | '&'
            | ';'
            | '<'
            | '>'
            | '('
            | ')'
            | '$'
            | '`'
            | '*'
            | '?'
            | '['
            | ']'
            | '#'
            | '~'
            | '{'
            | '}'
            | '='
            | '!'
            | '\n'
    )
}

/// Splits `command` into words, or decides it needs a shell.
///
/// Plain words are separated by spaces and tabs; single quotes keep everything literally; double
/// quotes keep everything but `\"` and `\\` literally (a `$` or backquote inside them needs the
/// shell); an unquoted backslash keeps the next character literally. A `=` is routed to the shell
/// too (it may be an assignment prefix such as `A=1 cmd`), which is always correct, only slower.
pub fn split(command: &str) -> Result<Plan, SplitError> {
    if command.contains('\0') {
        return Err(SplitError::Nul);
    }
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut needs_shell = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                single_quoted(&mut chars, &mut current)?;
            }
            '"' => {
                in_word = true;
                needs_shell |= double_quoted(&mut chars, &mut current)?;
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    // A backslash-newline is a line continuation for the shell.
                    Some('\n') => needs_shell = true,
                    Some(c) => current.push(c),
                    None => return Err(SplitError::TrailingBackslash),
                }
            }
            c if is_shell_special(c) => {
                needs_shell = true;
                in_word = true;
                current.push(c);
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    if needs_shell {
        return Ok(Plan::Shell(command.to_owned()));
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(Plan::Direct(words))
}

/// Reads a single-quoted string after its opening quote into `word`: everything is literal.
fn single_quoted(chars: &mut Chars, word: &mut String) -> Result<(), SplitError> {
    loop {
        match chars.next() {
            Some('\'') => return Ok(()),
            Some(c) => word.push(c),
            None => return Err(SplitError::Unterminated("single")),
        }
    }
}

/// Reads a double-quoted string after its opening quote into `word`; whether it needs the shell
/// (a `$`, a backquote or an escaped newline inside).
fn double_quoted(chars: &mut Chars, word: &mut String) -> Result<bool, SplitError> {
    let mut needs_shell = false;
    loop {
        match chars.next() {
            Some('"') => return Ok(needs_shell),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => word.push(c),
                Some(c @ ('$' | '`' | '\n')) => {
                    needs_shell = true;
                    word.push('\\');
                    word.push(c);
                }
                Some(c) => {
                    word.push('\\');
                    word.push(c);
                }
                None => return Err(SplitError::Unterminated("double")),
            },
            Some(c @ ('$' | '`')) => {
                needs_shell = true;
                word.push(c);
            }
            Some(c) => word.push(c),
            None => return Err(SplitError::Unterminated("double")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn direct(words: &[&str]) -> Plan {
        Plan::Direct(words.iter().map(|w| (*w).to_owned()).collect())
    }

    #[test]
    fn examples() {
        assert_eq!(split("ls -la").unwrap(), direct(&["ls", "-la"]));
        assert_eq!(
            split("  python3   -c 'print(6*7)' ").unwrap(),
            direct(&["python3", "-c", "print(6*7)"])
        );
        assert_eq!(
            split(r#"echo "a b" c\ d ''"#).unwrap(),
            direct(&["echo", "a b", "c d", ""])
        );
        assert_eq!(
            split(r#"echo "x\"y\\z\n""#).unwrap(),
            direct(&["echo", r#"x"y\z\n"#])
        );
        assert_eq!(
            split("echo a | wc -c").unwrap(),
            Plan::Shell("echo a | wc -c".to_owned())
        );
        assert_eq!(
            split("echo $HOME").unwrap(),
            Plan::Shell("echo $HOME".to_owned())
        );
        assert_eq!(
            split("echo \"$HOME\"").unwrap(),
            Plan::Shell("echo \"$HOME\"".to_owned())
        );
        assert_eq!(split("echo '$HOME'").unwrap(), direct(&["echo", "$HOME"]));
        assert_eq!(split("A=1 env").unwrap(), Plan::Shell("A=1 env".to_owned()));
        assert_eq!(split("ls *.py").unwrap(), Plan::Shell("ls *.py".to_owned()));
        assert_eq!(split("").unwrap_err(), SplitError::Empty);
        assert_eq!(split("   ").unwrap_err(), SplitError::Empty);
        assert_eq!(
            split("echo 'a").unwrap_err(),
            SplitError::Unterminated("single")
        );
        assert_eq!(
            split("echo \"a").unwrap_err(),
            SplitError::Unterminated("double")
        );
        assert_eq!(
            split("echo a\\").unwrap_err(),
            SplitError::TrailingBackslash
        );
        assert_eq!(split("a\0").unwrap_err(), SplitError::Nul);
        assert_eq!(
            Plan::Shell("x".into()).argv(),
            vec!["/bin/sh".to_owned(), "-c".to_owned(), "x".to_owned()]
        );
    }

    /// Quotes a word for the shell with single quotes.
    fn quote(word: &str) -> String {
        format!("'{}'", word.replace('\'', r#"'\''"#))
    }

    proptest! {
        /// Any list of words, each single-quoted, splits back into exactly those words.
        #[test]
        fn quoted_words_round_trip(words in proptest::collection::vec("[^\0]{0,8}", 1..6)) {
            let command = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(split(&command).unwrap(), Plan::Direct(words));
        }

        /// Plain words without special characters split on whitespace like `split_whitespace`.
        #[test]
        fn plain_words_split_on_blanks(command in "[a-zA-Z0-9_./:,+@%^-]{0,6}([ \t]{1,3}[a-zA-Z0-9_./:,+@%^-]{1,6}){0,5}") {
            let expected: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            match split(&command) {
                Ok(Plan::Direct(words)) => prop_assert_eq!(words, expected),
                Err(SplitError::Empty) => prop_assert!(expected.is_empty()),
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }

        /// Never panics, and a direct plan never contains unquoted shell syntax that the shell would
        /// have interpreted: every special character in the input is inside quotes or escaped.
        #[test]
        fn never_panics(command in "\\PC{0,24}") {
            let _ = split(&command);
        }
    }

    /// When `/bin/sh` is there, the direct words are exactly the words the shell passes on.
    #[test]
    fn agrees_with_the_shell() {
        if !Path::new("/bin/sh").exists() {
            return;
        }
        for command in [
            "printf a",
            "printf 'a b' c\\ d \"e\\\"f\" ''",
            "printf \"x\\\\y\" 'it'\\''s'",
            "printf \"a\\nb\" \\q",
        ] {
            let Plan::Direct(words) = split(command).unwrap() else {
                panic!("{command} should run directly")
            };
            let script = format!(
                "for w in {}; do printf '%s\\0' \"$w\"; done",
                &command["printf".len()..]
            );
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            let from_shell: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .split_terminator('\0')
                .map(str::to_owned)
                .collect();
            assert_eq!(&words[1..], &from_shell[..], "{command}");
        }
    }

    use std::path::Path;
}
