//! Shell completion: `durablejob completion bash|zsh|fish|kubectl` prints a script that asks
//! `durablejob __complete WORDS...` what may come next, and `kubectl durablejob <TAB>` asks the
//! same of `kubectl_complete-durablejob` (kubectl's plugin completion convention). The words
//! are those after the program's name, the last one the word being completed ("" for a new one).
//!
//! What may come next is read from the command line's own definition ([`next`], pure): verbs,
//! flags, a flag's values, and for a verb's NAME the DurableJobs of the namespace the words name
//! (or the kubeconfig's), listed with the caller's credentials. The answer is one candidate per
//! line and a last line `:<directive>`, Cobra's convention that kubectl reads: `:4` no file
//! names, `:0` the shell's default (a flag that takes a file).

use clap::Command;

use super::args::Target;

/// What the word being completed may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// These words (already filtered by what was typed).
    Words(Vec<String>),
    /// A DurableJob's name, of the namespace and kubeconfig the words name; `prefix` typed.
    Names { target: Target, prefix: String },
    /// A file name (the shell's own completion).
    Files,
    /// Free text (a time, an id): nothing to offer.
    Nothing,
}

/// Cobra's ShellCompDirective values, as kubectl reads them.
const NO_FILES: u8 = 4;
const DEFAULT: u8 = 0;

/// Server commands, not offered through `kubectl durablejob`.
const NOT_PLUGIN_VERBS: [&str; 2] = ["operator", "runner"];

/// What may come at the last of `words` (the words after the program's name).
pub fn next(root: &Command, words: &[String], plugin: bool) -> Next {
    let (typed, done) = match words.split_last() {
        Some((last, done)) => (last.as_str(), done),
        None => ("", &[][..]),
    };
    let mut command = root;
    let mut positionals = 0usize;
    let mut target = Target::default();
    let mut i = 0;
    let mut pending_flag: Option<&clap::Arg> = None;
    while i < done.len() {
        let word = done[i].as_str();
        i += 1;
        if let Some(flag) = pending_flag.take() {
            remember(&mut target, flag, word);
            continue;
        }
        if word == "--" {
            positionals += done.len() - i;
            break;
        }
        if word.starts_with('-') && word.len() > 1 {
            let (name, inline) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (word, None),
            };
            match find_flag(command, name) {
                Some(flag) if takes_value(flag) => match inline {
                    Some(v) => remember(&mut target, flag, v),
                    None => pending_flag = Some(flag),
                },
                _ => {}
            }
            continue;
        }
        match subcommand(command, word, plugin && std::ptr::eq(command, root)) {
            Some(sub) if positionals == 0 => command = sub,
            _ => positionals += 1,
        }
    }
    // the value of a flag
    if let Some(flag) = pending_flag {
        return flag_value(flag, typed);
    }
    if let Some((name, value)) = typed.split_once('=')
        && let Some(flag) = find_flag(command, name).filter(|f| takes_value(f))
    {
        return match flag_value(flag, value) {
            Next::Words(values) => Next::Words(values.into_iter().map(|v| format!("{name}={v}")).collect()),
            other => other,
        };
    }
    if typed.starts_with('-') {
        return Next::Words(flags(command).filter(|f| f.starts_with(typed)).collect());
    }
    let subs: Vec<String> = visible_subcommands(command, plugin && std::ptr::eq(command, root))
        .filter(|s| s.starts_with(typed))
        .collect();
    if positionals == 0 && command.has_subcommands() {
        return Next::Words(subs);
    }
    let takes_name = command.get_positionals().any(|a| a.get_id() == "name");
    if takes_name && positionals == 0 {
        return Next::Names {
            target,
            prefix: typed.to_string(),
        };
    }
    match command.get_positionals().nth(positionals) {
        Some(a) if is_path(a) => Next::Files,
        Some(a) => values_of(a, typed).map_or(Next::Nothing, Next::Words),
        None => Next::Nothing,
    }
}

/// The candidates for [`Next`], DurableJob names listed from the cluster (none when it cannot
/// be reached), and the directive.
pub async fn answer(next: Next) -> (Vec<String>, u8) {
    match next {
        Next::Words(words) => (words, NO_FILES),
        Next::Files => (vec![], DEFAULT),
        Next::Nothing => (vec![], NO_FILES),
        Next::Names { target, prefix } => {
            let names = tokio::time::timeout(std::time::Duration::from_secs(5), names(&target))
                .await
                .unwrap_or_default();
            (
                names.into_iter().filter(|n| n.starts_with(&prefix)).collect(),
                NO_FILES,
            )
        }
    }
}

/// The answer as printed: a candidate per line, then the directive.
pub fn render(candidates: &[String], directive: u8) -> String {
    let mut out = String::new();
    for c in candidates {
        out.push_str(c);
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

async fn names(target: &Target) -> Vec<String> {
    use kube::{Api, api::ListParams};
    let Ok((client, namespace)) = super::connect(&target.cluster, "kubectl-durablejob/complete").await else {
        return vec![];
    };
    let api: Api<crate::api::DurableJob> = Api::namespaced(client, &namespace);
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => list.items.into_iter().filter_map(|d| d.metadata.name).collect(),
        Err(_) => vec![],
    }
}

/// The script for `durablejob completion SHELL` (`kubectl`: the `kubectl_complete-durablejob`
/// executable kubectl runs to complete the plugin's words).
pub fn script(shell: &str) -> Option<&'static str> {
    Some(match shell {
        "bash" => BASH,
        "zsh" => ZSH,
        "fish" => FISH,
        "kubectl" => KUBECTL,
        _ => return None,
    })
}

const BASH: &str = r#"# durablejob completion for bash: source it, e.g. from ~/.bashrc:
#   source <(durablejob completion bash)
_durablejob() {
  local IFS=$'\n' out directive
  out=$(durablejob __complete "${COMP_WORDS[@]:1:$COMP_CWORD}" 2>/dev/null) || return
  directive=${out##*$'\n'}
  [ "$out" = "$directive" ] && out="" || out=${out%$'\n'*}
  COMPREPLY=($(compgen -W "$out" -- "${COMP_WORDS[COMP_CWORD]}"))
  if [ ${#COMPREPLY[@]} -eq 0 ] && [ "$directive" != ":4" ]; then
    COMPREPLY=($(compgen -f -- "${COMP_WORDS[COMP_CWORD]}"))
  fi
}
complete -F _durablejob durablejob
"#;

const ZSH: &str = r#"#compdef durablejob
# durablejob completion for zsh: source <(durablejob completion zsh), or save it as _durablejob
# in a directory of $fpath.
_durablejob() {
  local -a out
  out=("${(@f)$(durablejob __complete "${(@)words[2,$CURRENT]}" 2>/dev/null)}")
  local directive=${out[-1]}
  out=(${out[1,-2]})
  if (( ${#out} )); then
    compadd -- "${out[@]}"
  elif [[ $directive != ":4" ]]; then
    _files
  fi
}
compdef _durablejob durablejob
"#;

const FISH: &str = r#"# durablejob completion for fish: durablejob completion fish > ~/.config/fish/completions/durablejob.fish
function __durablejob_complete
    set -l words (commandline -opc)[2..-1] (commandline -ct)
    durablejob __complete $words 2>/dev/null | string match -v -r '^:'
end
complete -c durablejob -f -a '(__durablejob_complete)'
"#;

const KUBECTL: &str = r#"#!/bin/sh
# kubectl_complete-durablejob: kubectl runs it to complete `kubectl durablejob ...` (kubectl's
# plugin completion). Save it on $PATH beside kubectl-durablejob and make it executable:
#   kubectl durablejob completion kubectl > ~/.local/bin/kubectl_complete-durablejob
#   chmod +x ~/.local/bin/kubectl_complete-durablejob
exec kubectl-durablejob __complete "$@"
"#;

fn subcommand<'a>(command: &'a Command, word: &str, plugin: bool) -> Option<&'a Command> {
    command
        .get_subcommands()
        .filter(|s| !(plugin && NOT_PLUGIN_VERBS.contains(&s.get_name())))
        .find(|s| s.get_name() == word || s.get_all_aliases().any(|a| a == word))
}

fn visible_subcommands(command: &Command, plugin: bool) -> impl Iterator<Item = String> + '_ {
    command
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .filter(move |s| !(plugin && NOT_PLUGIN_VERBS.contains(&s.get_name())))
        .map(|s| s.get_name().to_string())
}

fn find_flag<'a>(command: &'a Command, word: &str) -> Option<&'a clap::Arg> {
    command
        .get_arguments()
        .find(|a| match (word.strip_prefix("--"), word.strip_prefix('-')) {
            (Some(long), _) => a.get_long() == Some(long),
            (None, Some(short)) => short.chars().count() == 1 && a.get_short() == short.chars().next(),
            _ => false,
        })
}

fn takes_value(a: &clap::Arg) -> bool {
    a.get_num_args().is_some_and(|n| n.takes_values()) || a.get_action().takes_values()
}

fn flags(command: &Command) -> impl Iterator<Item = String> + '_ {
    command
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .chain(["--help".to_string()])
}

fn is_path(a: &clap::Arg) -> bool {
    matches!(
        a.get_value_hint(),
        clap::ValueHint::FilePath | clap::ValueHint::AnyPath | clap::ValueHint::DirPath
    ) || a
        .get_value_names()
        .is_some_and(|n| n.iter().any(|n| matches!(n.as_str(), "FILE" | "PATH" | "DIR")))
}

fn values_of(a: &clap::Arg, typed: &str) -> Option<Vec<String>> {
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .filter(|v| v.starts_with(typed))
        .collect();
    (!a.get_possible_values().is_empty()).then_some(values)
}

/// A flag's value: a file, one of its values, or free text. `--namespace` is not completed
/// from the cluster: listing namespaces needs a right most users of one namespace lack.
fn flag_value(flag: &clap::Arg, typed: &str) -> Next {
    if is_path(flag) {
        return Next::Files;
    }
    values_of(flag, typed).map_or(Next::Nothing, Next::Words)
}

/// Keeps what the words say about where to look for names.
fn remember(target: &mut Target, flag: &clap::Arg, value: &str) {
    match flag.get_long() {
        Some("namespace") => target.cluster.namespace = Some(value.to_string()),
        Some("kubeconfig") => target.cluster.kubeconfig = Some(value.into()),
        Some("context") => target.cluster.context = Some(value.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn words(line: &str) -> Vec<String> {
        // a trailing space starts a new word
        let mut w: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if line.ends_with(' ') || line.is_empty() {
            w.push(String::new());
        }
        w
    }

    fn at(line: &str) -> Next {
        next(&crate::cli::Cli::command(), &words(line), false)
    }

    fn plugin(line: &str) -> Next {
        next(&crate::cli::Cli::command(), &words(line), true)
    }

    fn listed(n: Next) -> Vec<String> {
        match n {
            Next::Words(w) => w,
            other => panic!("words, not {other:?}"),
        }
    }

    #[test]
    fn verbs_complete_from_what_was_typed_and_the_plugin_offers_no_server_commands() {
        assert_eq!(listed(at("tr")), ["trigger"]);
        assert_eq!(listed(at("re")), ["resume", "retry"]);
        let all = listed(at(""));
        for verb in [
            "operator",
            "runner",
            "trigger",
            "backfill",
            "rollout",
            "runs",
            "status",
            "completion",
        ] {
            assert!(all.contains(&verb.to_string()), "{verb} in {all:?}");
        }
        assert!(
            !all.iter()
                .any(|v| v.starts_with("__") || v == "help" || v == "worker"),
            "{all:?}"
        );
        let verbs = listed(plugin(""));
        assert!(!verbs.contains(&"operator".to_string()) && verbs.contains(&"trigger".to_string()));
        assert_eq!(listed(at("rollout p")), ["promote", "pause"]);
    }

    #[test]
    fn a_verbs_name_is_a_durablejob_of_the_namespace_the_words_give() {
        let Next::Names { target, prefix } = at("trigger -n team --context kind nig") else {
            panic!("names")
        };
        assert_eq!(prefix, "nig");
        assert_eq!(target.cluster.namespace.as_deref(), Some("team"));
        assert_eq!(target.cluster.context.as_deref(), Some("kind"));
        let Next::Names { target, .. } = at("status --namespace=prod ") else {
            panic!("names")
        };
        assert_eq!(target.cluster.namespace.as_deref(), Some("prod"));
        assert!(matches!(at("rollout status "), Next::Names { .. }));
        assert_eq!(at("trigger report "), Next::Nothing, "one name only");
    }

    #[test]
    fn flags_and_their_values_complete() {
        let flags = listed(at("backfill report --"));
        for f in [
            "--from",
            "--to",
            "--overlap",
            "--max-slots",
            "--wait",
            "--namespace",
            "--help",
        ] {
            assert!(flags.contains(&f.to_string()), "{f} in {flags:?}");
        }
        assert_eq!(
            listed(at("trigger report --overlap buf")),
            ["buffer-one", "buffer-all"]
        );
        assert_eq!(listed(at("trigger report --overlap=a")), ["--overlap=allow-all"]);
        assert_eq!(at("backfill report --from "), Next::Nothing);
        assert_eq!(at("trigger report --kubeconfig "), Next::Files);
        assert_eq!(listed(at("completion ")), ["bash", "zsh", "fish", "kubectl"]);
    }

    #[test]
    fn the_answer_ends_with_cobras_directive() {
        assert_eq!(render(&["a".into(), "b".into()], NO_FILES), "a\nb\n:4\n");
        assert_eq!(render(&[], DEFAULT), ":0\n");
    }

    #[test]
    fn every_shell_has_a_script_that_asks_the_binary() {
        for shell in ["bash", "zsh", "fish", "kubectl"] {
            assert!(script(shell).unwrap().contains("__complete"), "{shell}");
        }
        assert!(script("powershell").is_none());
    }
}
