"""Models named on command lines: a container's argv, the shell lines it runs (and the lines inside
those), a server's model flags and ``vllm serve <model>``; and how a word names a model (``classify``).

Everything read here is bounded: a shell line is tokenised only up to ``MAX_SHELL_CHARS`` and
``MAX_SHELL_DEPTH`` lines deep, and a variable's line once per container; a bound passed is a problem.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from policyengine.workloads.values import Problems, problem

# A reference found: (uri, field path, source). uri "" is a model named without a URI.
Ref = tuple[str, str, str]

MAX_SHELL_CHARS = 64 * 1024  # a longer shell string is not tokenised (a problem says so)
MAX_SHELL_DEPTH = 4  # shell lines inside shell lines read for models; a deeper one is a problem
# Flags naming the model a server loads: vLLM --model, TGI and KServe's huggingface server --model-id,
# SGLang --model-path. Underscores are read as dashes, as vLLM's and KServe's parsers do.
MODEL_FLAGS = frozenset({"--model", "--model-id", "--model-path"})
REVISION_FLAG = "--revision"
_SEPARATORS = frozenset({";", "&&", "||", "|", "&", ";;"})
_WHITESPACE = re.compile(r"\s")
_OPENERS = re.compile(r"^(?:\$?\(|`)+")  # a subshell, substitution or backquote opening at a word
_CLOSERS = re.compile(r"[)`]+$")
# Servers given their model as a positional argument: the words between the program and the model
# (``vllm serve <model>``, ``lmdeploy serve api_server <model>``, ``trtllm-serve <model>``), and the
# subcommand words that may stand before it (``trtllm-serve embeddings <model>``).
_SERVE_WORDS = {
    "vllm": ("serve",),
    "sglang": ("serve",),
    "lmdeploy": ("serve", "api_server"),
    "trtllm-serve": (),
}
_SUBCOMMANDS = frozenset({"serve", "embeddings", "rerank", "mm_embedding_serve"})
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_VARIABLE = re.compile(
    r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


def classify(value: str, bare_name: bool) -> str | None:
    """The model reference a server reads from ``value``: a URI as written (``s3://``, ``hf://``,
    ``oci://``, MLflow ``models:/``), a Hugging Face id ``org/name`` as ``hf://org/name`` (a bare
    ``name`` too when ``bare_name``), an unresolved ``$VAR`` as written (it cannot be checked, so it
    must not pass as approved); None for a local path, which another field filled."""
    value = value.strip()
    if not value or value[0] in "/.~":
        return None
    if "://" in value or value.startswith(("models:/", "runs:/")) or "$" in value:
        return value
    if _HUB_ID.fullmatch(value) or (bare_name and _HUB_NAME.fullmatch(value)):
        return f"hf://{value}"
    return None


def with_revision(uri: str, revision: str) -> str:
    """``hf://org/name`` at a revision, written ``hf://org/name:<revision>`` (a 40-hex commit is a pin)."""
    revision = revision.strip()
    if revision and uri.startswith("hf://") and ":" not in uri[5:] and "@" not in uri[5:]:
        return f"{uri}:{revision}"
    return uri


def resolve(value: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` (Kubernetes) and ``$VAR`` / ``${VAR}`` (shell) when the whole value is one variable
    whose literal value the container's env gives."""
    name = _variable(value)
    return value if name is None else env.get(name, value)


def _variable(word: str) -> str | None:
    """The name of the one variable ``word`` wholly is (``$(VAR)``, ``$VAR``, ``${VAR}``), else None."""
    match = _VARIABLE.fullmatch(word.strip())
    return None if match is None else next(g for g in match.groups() if g)


def argv_refs(argv: list[tuple[str, str]], env: Mapping[str, str], problems: Problems) -> list[Ref]:
    """The argv as one command, and every element holding a shell line (``sh -c "vllm serve ..."``, any
    element with spaces, or a whole variable whose value is one: Kubernetes expands ``$(VAR)`` in command
    and args) as the commands of that line, with the lines inside it (``_script_refs``)."""
    reading = _Reading(env, problems)
    words: list[tuple[str, str]] = []
    scripts: list[tuple[str, str]] = []
    for token, path in argv:
        line = _line(token, reading)
        if line is None:
            words.append((token, path))
        else:
            scripts.append((line, path))
    refs = _segment_refs(words, reading)
    for line, path in scripts:
        refs.extend(_script_refs(line, path, reading, 1))
    return refs


class _Reading:
    """One container's command line being read: its env, the variables already read as lines (each once:
    a line naming ``$RUN`` a thousand times tokenises its value once), and the kinds of problem already
    reported (each once: a line of a thousand unreadable commands is one problem, not a thousand)."""

    __slots__ = ("env", "problems", "reported", "variables")

    def __init__(self, env: Mapping[str, str], problems: Problems) -> None:
        self.env = env
        self.problems = problems
        self.variables: set[str] = set()
        self.reported: set[str] = set()

    def problem(self, kind: str, path: str, message: str) -> None:
        if kind not in self.reported:
            self.reported.add(kind)
            problem(self.problems, path, message)


def _script_refs(script: str, path: str, reading: _Reading, depth: int) -> list[Ref]:
    """A shell line's references: each simple command's, and those of every shell line a command is
    given (``sh -c "bash -c 'vllm serve ...'"``, ``su -c "$RUN"``), up to ``MAX_SHELL_DEPTH`` lines deep.
    Each nested line is a part of its parent's text or a variable's value read once (``_line``), so a
    container's lines are tokenised in at most ``MAX_SHELL_DEPTH`` times its own text."""
    refs: list[Ref] = []
    for segment in _shell_segments(script, path, reading.problems):
        refs.extend(_segment_refs([(t, path) for t in segment], reading))
        lines = [line for line in (_line(t, reading) for t in segment) if line is not None]
        if lines and depth >= MAX_SHELL_DEPTH:
            message = f"shell line nested more than {MAX_SHELL_DEPTH} deep is not read for model references"
            reading.problem("deep", path, message)
            continue
        for line in lines:
            refs.extend(_script_refs(line, path, reading, depth + 1))
    return refs


def _line(token: str, reading: _Reading) -> str | None:
    """The shell line ``token`` is: itself when it holds whitespace, or the value of the variable it
    wholly names when that value does (each variable once per container); None for a plain word."""
    if is_script(token):
        return token
    name = _variable(token) if "$" in token else None
    if name is None:
        return None
    value = reading.env.get(name)
    if value is None or name in reading.variables or not is_script(value):
        return None
    reading.variables.add(name)
    return value


def is_script(token: str) -> bool:
    """Whether an argv element holds whitespace (a shell line): one regex scan, not a generator over
    its characters (``\\s`` matches exactly the characters ``str.isspace`` does)."""
    return _WHITESPACE.search(token) is not None


def _shell_segments(script: str, path: str, problems: Problems) -> list[list[str]]:
    """The simple commands of a shell line, split at ``;``, ``&&``, ``|``...; odd quoting never fails."""
    if "model" not in script.lower() and "serve" not in script and "$" not in script:
        return []  # no server invocation, nor a variable that may hold one: not worth tokenising
    if len(script) > MAX_SHELL_CHARS:
        message = (
            f"shell command line of {len(script)} characters is not read for model references "
            f"(at most {MAX_SHELL_CHARS})"
        )
        problem(problems, path, message)
        return []
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        tokens = list(lexer)
    except ValueError:  # an unclosed quote: read the words as they stand
        tokens = re.split(r"(;|&&|\|\||\||&)|\s+", script.replace('"', " ").replace("'", " "))
        tokens = [t for t in tokens if t]
    segments: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(token)
    return [s for s in segments if s]


def _segment_refs(tokens: Sequence[tuple[str, str]], reading: _Reading) -> list[Ref]:
    """References of one simple command: model flags, ``vllm serve <model>``, and ``--revision``."""
    env = reading.env
    found: list[tuple[str, str]] = []
    uncertain: list[tuple[str, str]] = []
    revision = ""
    i = 0
    while i < len(tokens):
        token, path = tokens[i]
        name, eq, value = token.partition("=")
        flag = name.replace("_", "-") if name.startswith("--") else ""
        if flag in MODEL_FLAGS or flag == REVISION_FLAG:
            if not eq:
                if i + 1 >= len(tokens):
                    break
                value, path = tokens[i + 1]
                i += 1
            value = resolve(_closed(value), env)
            if flag == REVISION_FLAG:
                revision = value
            else:
                found.append((value, path))
        elif (words := _SERVE_WORDS.get(_program(token))) is not None and _follow(tokens, i + 1, words):
            positional, maybe = _served(
                tokens, i + 1 + len(words), _SUBCOMMANDS if not words else frozenset()
            )
            found.extend((resolve(_closed(v), env), p) for v, p in positional)
            uncertain.extend(maybe)
        i += 1
    if uncertain and not found:
        found.extend(_uncertain_models(uncertain, reading))
    refs: list[Ref] = []
    for value, path in found:
        uri = classify(value, bare_name=True)
        if uri is not None:
            source = "command" if ".command[" in path else "args"
            refs.append((with_revision(uri, revision), path, source))
    return refs


def _follow(tokens: Sequence[tuple[str, str]], start: int, words: tuple[str, ...]) -> bool:
    """Whether ``words`` come at ``start``, with a word after them (the model, or its options)."""
    end = start + len(words)
    return end < len(tokens) and all(tokens[start + k][0] == w for k, w in enumerate(words))


def _served(
    tokens: Sequence[tuple[str, str]], start: int, subcommands: frozenset[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The model ``vllm serve`` is given as its positional argument, which options may come before
    (argparse reads ``vllm serve --port 8000 org/m``): the first word that is not right after an option
    written without ``=`` (past one of ``subcommands``), and the words before it that are (each may be
    that option's value or the model: ``--enforce-eager org/m`` takes no value, ``--port 8000`` does)."""
    uncertain: list[tuple[str, str]] = []
    after_option = False
    for token, path in tokens[start:]:
        if token.startswith("-"):
            after_option = token != "--" and "=" not in token
        elif after_option:
            uncertain.append((token, path))
            after_option = False
        elif token in subcommands:
            subcommands = frozenset()
        else:
            return [(token, path)], uncertain
    return [], uncertain


def _uncertain_models(words: list[tuple[str, str]], reading: _Reading) -> list[tuple[str, str]]:
    """A served model no word names for certain: the words that read as a model (``org/name`` or a URI;
    ``8000`` or ``bfloat16`` do not), or a problem when none does, so the server is never passed for want
    of a model the view could not tell apart from option values."""
    resolved = ((resolve(_closed(w), reading.env), p) for w, p in words)
    models = [(v, p) for v, p in resolved if classify(v, False)]
    if not models:
        message = (
            "the model of a `serve` command cannot be told apart from its options' values "
            f"({' '.join(w for w, _ in words[:4])[:200]}): name it first or with --model"
        )
        reading.problem("uncertain", words[0][1], message)
    return models


def _program(token: str) -> str:
    """The program a word runs, as a shell runs it inside ``( )``, ``$( )`` or backquotes."""
    return _OPENERS.sub("", token).rsplit("/", 1)[-1]


def _closed(word: str) -> str:
    """A word without the ``)`` or backquote that closes a subshell or substitution after it; a
    Kubernetes variable ``$(VAR)`` is kept whole."""
    return word if _VARIABLE.fullmatch(word) else _CLOSERS.sub("", word)
