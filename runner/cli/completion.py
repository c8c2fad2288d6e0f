"""`visionyard completion bash|zsh`: a completion script made from the argparse parser itself, so
every command, option and choice the parser knows completes, and nothing else.

The parser is walked once into one record per command path (`visionyard`, `visionyard envs`, ...):
its subcommands, its options, and which options take a value (with the value's choices, if any).
The script finds the command path in the words typed so far, then offers subcommands, options, an
option's choices, or files.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

PROG = "visionyard"


@dataclass
class Node:
    path: str                                                   # "visionyard envs"
    commands: dict[str, str] = field(default_factory=dict)      # subcommand -> help
    options: dict[str, str] = field(default_factory=dict)       # option string -> help
    values: dict[str, list[str]] = field(default_factory=dict)  # option taking a value -> its choices


def walk(parser: argparse.ArgumentParser, path: str = PROG) -> list[Node]:
    node, below = Node(path), []
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                node.commands[name] = helps.get(name, "")
                below += walk(subparser, f"{path} {name}")
        elif action.option_strings and action.help != argparse.SUPPRESS:
            for option in action.option_strings:
                node.options[option] = action.help or ""
                if action.nargs != 0:
                    node.values[option] = [str(c) for c in action.choices or ()]
    return [node, *below]


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    nodes = walk(parser)
    return {"bash": bash, "zsh": zsh}[shell](nodes)


def _sh(text: str) -> str:
    """`text` as one single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def _cases(nodes: list[Node], body) -> str:
    """`case "$1" in` with one branch per command path whose `body(node)` says something."""
    branches = [f"        {_sh(n.path)}) {text} ;;" for n in nodes if (text := body(n))]
    return "    case \"$1\" in\n" + "\n".join(branches) + "\n    esac"


def _value_cases(nodes: list[Node], body) -> str:
    """`case "$1 $2" in`: one branch per (command path, option taking a value)."""
    branches = [f"        {_sh(f'{n.path} {option}')}) {body(choices)} ;;"
                for n in nodes for option, choices in n.values.items()]
    return "    case \"$1 $2\" in\n" + "\n".join(branches) + "\n    esac"


BASH_MAIN = r"""
_visionyard() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmdpath="visionyard" word i=1
    while [ "$i" -lt "$COMP_CWORD" ]; do
        word="${COMP_WORDS[i]}"
        if [[ "$word" == -* ]]; then
            _visionyard_takes_value "$cmdpath" "$word" && i=$((i + 1))
        elif [[ " $(_visionyard_commands "$cmdpath") " == *" $word "* ]]; then
            cmdpath="$cmdpath $word"
        fi
        i=$((i + 1))
    done
    COMPREPLY=()
    if [[ "$prev" == -* ]] && _visionyard_takes_value "$cmdpath" "$prev"; then
        local choices
        choices="$(_visionyard_choices "$cmdpath" "$prev")"
        [ -n "$choices" ] && COMPREPLY=($(compgen -W "$choices" -- "$cur"))
        return 0  # no choices: a file or a free value (complete -o default offers files)
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$(_visionyard_options "$cmdpath")" -- "$cur"))
    else
        local commands
        commands="$(_visionyard_commands "$cmdpath")"
        [ -n "$commands" ] && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return 0
}

complete -o default -F _visionyard visionyard
"""


def bash(nodes: list[Node]) -> str:
    return "\n".join([
        "# bash completion for visionyard; made by `visionyard completion bash`.",
        "# Load it with: source <(visionyard completion bash)",
        "",
        "_visionyard_commands() {",
        _cases(nodes, lambda n: f"echo {_sh(' '.join(n.commands))}" if n.commands else ""),
        "}",
        "",
        "_visionyard_options() {",
        _cases(nodes, lambda n: f"echo {_sh(' '.join(n.options))}" if n.options else ""),
        "}",
        "",
        "_visionyard_takes_value() {",
        _value_cases(nodes, lambda choices: "return 0"),
        "    return 1",
        "}",
        "",
        "_visionyard_choices() {",
        _value_cases(nodes, lambda choices: f"echo {_sh(' '.join(choices))}"),
        "}",
    ]) + "\n" + BASH_MAIN


ZSH_MAIN = r"""
_visionyard() {
    local cmdpath="visionyard" word i=2
    local -a reply
    while (( i < CURRENT )); do
        word="${words[i]}"
        if [[ "$word" == -* ]]; then
            _visionyard_takes_value "$cmdpath" "$word" && (( i++ ))
        else
            _visionyard_commands "$cmdpath"
            (( ${reply[(I)${word}:*]} )) && cmdpath="$cmdpath $word"
        fi
        (( i++ ))
    done
    local prev="${words[CURRENT-1]}"
    if [[ "$prev" == -* ]] && _visionyard_takes_value "$cmdpath" "$prev"; then
        _visionyard_choices "$cmdpath" "$prev"
        if (( ${#reply} )); then compadd -a reply; else _files; fi
        return
    fi
    if [[ "$PREFIX" == -* ]]; then
        _visionyard_options "$cmdpath"
        _describe -t options option reply
    else
        _visionyard_commands "$cmdpath"
        if (( ${#reply} )); then _describe -t commands command reply; else _files; fi
    fi
}

if [ "$funcstack[1]" = "_visionyard" ]; then
    _visionyard "$@"
else
    compdef _visionyard visionyard
fi
"""


def _described(items: dict[str, str]) -> str:
    """`reply=('name:help' ...)` for zsh's _describe (a colon in a name is escaped)."""
    entries = [_sh(f"{name.replace(':', chr(92) + ':')}:{' '.join(text.split())}") for name, text in items.items()]
    return f"reply=({' '.join(entries)})"


def zsh(nodes: list[Node]) -> str:
    return "\n".join([
        "#compdef visionyard",
        "# zsh completion for visionyard; made by `visionyard completion zsh`.",
        "# Load it with: source <(visionyard completion zsh) (after compinit), or save it as _visionyard in $fpath.",
        "",
        "_visionyard_commands() {",
        "    reply=()",
        _cases(nodes, lambda n: _described(n.commands) if n.commands else ""),
        "}",
        "",
        "_visionyard_options() {",
        "    reply=()",
        _cases(nodes, lambda n: _described(n.options) if n.options else ""),
        "}",
        "",
        "_visionyard_takes_value() {",
        _value_cases(nodes, lambda choices: "return 0"),
        "    return 1",
        "}",
        "",
        "_visionyard_choices() {",
        "    reply=()",
        _value_cases(nodes, lambda choices: f"reply=({' '.join(_sh(c) for c in choices)})" if choices else ":"),
        "}",
    ]) + "\n" + ZSH_MAIN
