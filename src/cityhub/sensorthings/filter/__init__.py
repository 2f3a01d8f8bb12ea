"""The SensorThings API v1.1 ``$filter`` query option: parser, canonical printer and SQL compiler.

``parse_filter`` turns the OData-style expression into a small immutable AST, ``to_text`` prints an AST
back in canonical form, and ``compile_filter`` type-checks an AST and turns it into a SQL boolean
expression through a :class:`SqlContext` supplied by the query engine (DuckDB or PostgreSQL). The
modules: :mod:`.ast` (node types, limits, operators and functions), :mod:`.lexer`, :mod:`.parser`,
:mod:`.printer` and :mod:`.compiler`; import from this package, not from them. :mod:`.query` (imported by
itself) builds the SELECTs of a SensorThings read around the compiled filter: with the compiler, the only SQL
outside the store.

The tokenizer and the precedence-climbing parser are hand-written so that every error names the exact
character offset (0-based) at fault, and so that SensorThings' own function set is checked while parsing.

Limits: at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting. A level is a
grouping parenthesis, a function call, a unary operator, or a binary operation nested inside another
operand; a left-associative chain of one ``and``/``or`` operator counts once, so ``id eq 1 or id eq 2 or
...`` may be as long as the length limit allows. The printer emits exactly that much nesting, so any
parsed filter prints to text that parses back to the same AST. The canonical text can be longer than the
input (parentheses are added, numbers and WKT normalised), so near :data:`MAX_LENGTH` re-parsing it needs
``parse_filter(text, max_length=...)``; a next link should carry the client's original text.
"""

from __future__ import annotations

from cityhub.sensorthings.filter.ast import (
    FUNCTIONS,
    MAX_DEPTH,
    MAX_LENGTH,
    Binary,
    Call,
    FilterError,
    Lambda,
    Literal,
    Node,
    Path,
    Unary,
)
from cityhub.sensorthings.filter.compiler import Resolved, SqlContext, compile_expression, compile_filter
from cityhub.sensorthings.filter.parser import parse_filter
from cityhub.sensorthings.filter.printer import to_text

__all__ = [
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Binary",
    "Call",
    "FilterError",
    "Lambda",
    "Literal",
    "Node",
    "Path",
    "Resolved",
    "SqlContext",
    "Unary",
    "compile_expression",
    "compile_filter",
    "parse_filter",
    "to_text",
]
