"""What kube-apiserver's CEL environment gives a ValidatingAdmissionPolicy at each Kubernetes version, and
why an expression needs more (a policyengine view, a function the API server lacks at that version).

The table follows the base environment of k8s.io/apiserver (``pkg/cel/environment/base.go``, the
``IntroducedVersion`` of each library): the URL, regex and list libraries and cel-go's strings extension
from the start (strings at version 2 from 1.29), optional types and quantities from 1.28, sets from
1.29, IP and CIDR from 1.30, the format library from 1.31, two-variable comprehensions from 1.32, semver
from 1.33 and cel-go's lists extension (version 3) from 1.34. 1.35 to 1.37 add nothing a
ValidatingAdmissionPolicy reads. Functions of this engine that no Kubernetes version has (Kyverno's
libraries, ``math.*``, ``lists.includes``...) keep a policy on the webhook at every version.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import lark
from celpy.celparser import CELParseError

from policyengine.cel.library import build_functions, known_names, type_identifiers
from policyengine.cel.parser import parse
from policyengine.cel.port import CelCompileError, Declarations
from policyengine.cel.scope import check_declared
from policyengine.cel.syntax import (
    MACROS,
    TWO_VARIABLE,
    Node,
    call_args,
    drop_trailing_commas,
    is_macro_call,
    macro_variables,
    nodes,
    simple_ident,
)
from policyengine.native import ADMISSION_ROOTS, VIEWS

OLDEST, NEWEST = 30, 37  # the Kubernetes minor versions ``generate vap`` targets
VERSIONS = tuple(f"1.{minor}" for minor in range(OLDEST, NEWEST + 1))

_CORE = (
    "!_ -_ _!=_ _%_ _&&_ _*_ _+_ _-_ _/_ _<=_ _<_ _==_ _>=_ _>_ _?_:_ _[_]_ _in_ _||_ bool bytes contains "
    "double duration dyn endsWith getDate getDayOfMonth getDayOfWeek getDayOfYear getFullYear getHours "
    "getMilliseconds getMinutes getMonth getSeconds has int list map matches null_type size startsWith "
    "string timestamp type uint all exists exists_one filter"
)
# (first minor version, library, names): a name in several libraries is had from the earliest.
LIBRARIES: tuple[tuple[int, str, frozenset[str]], ...] = tuple(
    (minor, library, frozenset(names.split()))
    for minor, library, names in (
        (0, "the CEL standard library", _CORE),
        (0, "Kubernetes' URL library", "url isURL getScheme getHost getHostname getPort getEscapedPath getQuery"),
        (0, "Kubernetes' regex library", "find findAll"),
        (0, "Kubernetes' list library", "isSorted sum min max indexOf lastIndexOf"),
        (0, "cel-go's strings extension", "charAt indexOf lastIndexOf lowerAscii upperAscii replace split "
            "substring trim join strings.quote format"),
        (28, "optional types", "optional.none optional.of optional.ofNonZeroValue hasValue or orValue value "
             "optMap optFlatMap"),
        (28, "Kubernetes' quantity library", "quantity isQuantity sign add sub asApproximateFloat asInteger "
             "isInteger compareTo isGreaterThan isLessThan"),
        (29, "cel-go's sets extension", "sets.contains sets.equivalent sets.intersects"),
        (30, "Kubernetes' IP and CIDR libraries", "ip cidr isIP isCIDR ip.isCanonical family isUnspecified "
             "isLoopback isLinkLocalMulticast isLinkLocalUnicast isGlobalUnicast containsIP containsCIDR "
             "prefixLength masked string"),
        (31, "Kubernetes' format library", "validate format.dns1123Label format.dns1123Subdomain "
             "format.dns1035Label format.qualifiedName format.dns1123LabelPrefix format.dns1123SubdomainPrefix "
             "format.dns1035LabelPrefix format.labelValue format.uri format.uuid format.byte format.date "
             "format.datetime format.named"),
        (32, "two-variable comprehensions", "existsOne transformList transformMap transformMapEntry"),
        (33, "Kubernetes' semver library", "semver isSemver major minor patch compareTo isGreaterThan isLessThan"),
        (34, "cel-go's lists extension", "lists.range slice flatten distinct reverse sort sortBy first last"),
    )
)  # fmt: skip
_TWO_VARIABLE_MINOR = 32


@functools.cache
def _since() -> dict[str, tuple[int, str]]:
    since: dict[str, tuple[int, str]] = {}
    for minor, library, names in LIBRARIES:
        for name in names:
            if name not in since or minor < since[name][0]:
                since[name] = (minor, library)
    return since


@functools.cache
def _known() -> tuple[frozenset[str], frozenset[str]]:
    return known_names(build_functions()), frozenset(type_identifiers())


def parse_minor(version: str) -> int:
    """``1.33`` -> 33; ValueError naming the versions targeted for anything else."""
    match = re.fullmatch(r"v?1\.(\d+)(?:\.\d+)?", version.strip())
    minor = int(match.group(1)) if match else -1
    if not OLDEST <= minor <= NEWEST:
        raise ValueError(f"Kubernetes version {version!r} is not one of {', '.join(VERSIONS)}")
    return minor


def _tree(source: str) -> Node | None:
    try:
        return parse(drop_trailing_commas(source))
    except (CELParseError, RecursionError, lark.LarkError):
        return None


def _calls(tree: Node) -> Iterator[tuple[str, bool]]:
    """Every function, method and macro an expression calls, with whether it is a two-variable form."""
    known, _ = _known()
    for node in nodes(tree):
        if node.data in ("ident_arg", "dot_ident_arg"):
            yield str(node.children[0]), False
        elif node.data == "member_dot_arg":
            target, name = node.children[0], str(node.children[1])
            args = call_args(node, 2)
            namespace = simple_ident(target)
            if namespace is not None and f"{namespace}.{name}" in known:
                yield f"{namespace}.{name}", False
            elif is_macro_call(name, args):
                two = name in TWO_VARIABLE and len(macro_variables(name, args)) == 2
                yield name, two
            else:
                yield name, False


def unavailable(source: str, minor: int) -> str | None:
    """Why kube-apiserver 1.<minor> cannot run ``source`` as a ValidatingAdmissionPolicy expression, or None."""
    tree = _tree(source)
    if tree is None:
        return "its expression does not parse"
    known, types = _known()
    try:
        check_declared(tree, Declarations("ValidatingAdmissionPolicy", ADMISSION_ROOTS), known, types)
    except CelCompileError as err:
        quoted = re.search(r"'([^']+)'", str(err))
        root = quoted.group(1) if quoted else str(err)
        if root in VIEWS:
            return f"reads the view {root!r}, which only policyengine computes"
        return f"reads {root!r}, which the API server does not give a ValidatingAdmissionPolicy"
    since = _since()
    for name, two in _calls(tree):
        if two and minor < _TWO_VARIABLE_MINOR:
            return f"uses the two-variable form of {name}(), which the API server has from 1.{_TWO_VARIABLE_MINOR}"
        if name in MACROS and name not in since:
            continue
        if name not in since:
            return f"calls {name}(), which no Kubernetes API server has"
        first, library = since[name]
        if minor < first:
            return f"calls {name}() of {library}, which the API server has from 1.{first}"
    return None


def reads_params(source: str) -> bool:
    """Whether ``source`` reads the ``params`` root (outside any comprehension binding that name)."""
    tree = _tree(source)
    if tree is None or "params" not in source:
        return False
    known, types = _known()
    try:
        check_declared(tree, Declarations("", ADMISSION_ROOTS - {"params"}), known, types)
    except CelCompileError:
        return True
    return False


def params_tokens(source: str) -> tuple[str, list[tuple[int, int]]] | None:
    """The text (trailing commas dropped) and the spans of each ``params`` identifier in it, for inlining;
    None when a comprehension binds a variable of that name (the spans would be ambiguous)."""
    text = drop_trailing_commas(source)
    tree = _tree(text)
    if tree is None:
        return None
    spans: list[tuple[int, int]] = []
    for node in nodes(tree):
        if node.data == "member_dot_arg" and "params" in macro_variables_of(node):
            return None
        if node.data in ("ident", "dot_ident") and str(node.children[0]) == "params":
            token = node.children[0]
            assert isinstance(token, lark.Token) and token.start_pos is not None and token.end_pos is not None
            spans.append((token.start_pos, token.end_pos))
    return text, sorted(spans)


def macro_variables_of(node: Node) -> list[str]:
    name, args = str(node.children[1]), call_args(node, 2)
    return macro_variables(name, args) if is_macro_call(name, args) else []
