//! The parts of argparse4j's behaviour (the parser of Kafka's `kafka-storage` and
//! `kafka-metadata-quorum`) that clap does not give with the same words: mutually exclusive
//! groups (`argument --standalone/-s: not allowed with argument --no-initial-controllers/-N`) and
//! the `<prog>: error: <message>` usage error.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::ArgMatches;

/// Parses `args` with clap like [`super::parse_args`] (help exits 0, a usage error exits 1), and
/// also returns the matches, which know where each argument was on the command line.
pub fn parse_with_matches<T: clap::Parser>(args: Vec<OsString>) -> Result<(T, ArgMatches), u8> {
    let result = T::command()
        .try_get_matches_from(args)
        .and_then(|m| T::from_arg_matches(&m).map(|t| (t, m)));
    match result {
        Ok(v) => Ok(v),
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            let _ = e.print();
            Err(code)
        }
    }
}

/// Position on the command line of argument `id` when it was given there (not defaulted).
pub fn position(matches: &ArgMatches, id: &str) -> Option<usize> {
    if matches.try_contains_id(id).ok()?
        && matches.value_source(id) == Some(ValueSource::CommandLine)
    {
        matches.index_of(id)
    } else {
        None
    }
}

/// argparse4j's check of a mutually exclusive group: `group` lists `(clap id, textual name)`
/// (the textual name is argparse4j's, flags joined by `/`: `--standalone/-s`). When two or more
/// were given, the second one on the command line is refused with argparse4j's message.
pub fn mutex_violation(matches: &ArgMatches, group: &[(&str, &str)]) -> Option<String> {
    let mut given: Vec<(usize, &str)> = group
        .iter()
        .filter_map(|(id, name)| position(matches, id).map(|p| (p, *name)))
        .collect();
    given.sort();
    match given.as_slice() {
        [(_, first), (_, second), ..] => Some(format!(
            "argument {second}: not allowed with argument {first}"
        )),
        _ => None,
    }
}

/// argparse4j's `handleError`: the usage, then `<prog>: error: <message>`, on stderr. Returns the
/// exit code Kafka's tools use for it (1).
pub fn usage_error(usage: &str, prog: &str, message: &str) -> u8 {
    eprintln!("{usage}");
    eprintln!("{prog}: error: {message}");
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[arg(short = 'a', long = "alpha")]
        alpha: bool,
        #[arg(short = 'b', long = "beta")]
        beta: Option<String>,
        #[arg(long = "gamma")]
        gamma: bool,
    }

    fn check(args: &[&str]) -> Option<String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let (_, m) = parse_with_matches::<T>(args).ok()?;
        mutex_violation(&m, &[("alpha", "--alpha/-a"), ("beta", "--beta/-b")])
    }

    #[test]
    fn second_of_a_group_is_refused() {
        assert_eq!(check(&["t", "--gamma"]), None);
        assert_eq!(check(&["t", "-a"]), None);
        assert_eq!(check(&["t", "--beta", "x"]), None);
        assert_eq!(
            check(&["t", "-a", "--beta", "x"]).as_deref(),
            Some("argument --beta/-b: not allowed with argument --alpha/-a")
        );
        assert_eq!(
            check(&["t", "--beta=x", "--gamma", "--alpha"]).as_deref(),
            Some("argument --alpha/-a: not allowed with argument --beta/-b")
        );
    }
}
