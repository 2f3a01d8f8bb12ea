"""The ``$filter`` parser: precedence climbing over :func:`~.lexer.tokenize`'s tokens to an AST.

It checks what can be checked without knowing the entity type: operator spacing, function names and
arities, and the length and nesting limits (each error carries the offset at fault).
"""

from __future__ import annotations

from cityhub.sensorthings.filter.ast import (
    BINARY_BP,
    FUNCTIONS,
    LAMBDAS,
    MAX_DEPTH,
    MAX_LENGTH,
    NOT_BP,
    RESERVED,
    UNARY_BP,
    Binary,
    Call,
    FilterError,
    Lambda,
    Literal,
    Node,
    Path,
    Unary,
    is_chain,
)
from cityhub.sensorthings.filter.ast import depth as node_depth
from cityhub.sensorthings.filter.lexer import WS, Token, describe, tokenize


class _Parser:
    """Precedence climbing. Each parse method returns the node and its nesting depth (see :func:`.ast.depth`)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.parens = 0  # open grouping parentheses
        self.pending = 0  # operands being parsed that will nest inside a node; a lower bound on depth

    def error(self, expected: str, tok: Token) -> FilterError:
        return FilterError(f"expected {expected} at position {tok.pos}, found {describe(tok)}", tok.pos)

    def too_deep(self, tok: Token) -> FilterError:
        message = f"expression nested too deeply (over {MAX_DEPTH} levels) at position {tok.pos}"
        return FilterError(message, tok.pos)

    def enter(self, tok: Token) -> None:
        self.pending += 1
        if self.pending > MAX_DEPTH:
            raise self.too_deep(tok)

    def built(self, depth: int, tok: Token) -> int:
        if depth > MAX_DEPTH:
            raise self.too_deep(tok)
        return depth

    def expect(self, kind: str, what: str) -> Token:
        tok = self.toks[self.i]
        if tok.kind != kind:
            raise self.error(what, tok)
        self.i += 1
        return tok

    def parse(self) -> Node:
        node, _ = self.expression(0)
        tok = self.toks[self.i]
        if tok.kind != "eof":
            hint = ""
            if tok.kind == "ident" and tok.text.lower() in RESERVED and tok.text not in RESERVED:
                hint = f" (operators are lowercase: '{tok.text.lower()}')"
            raise FilterError(
                f"expected an operator or end of input at position {tok.pos}, found {describe(tok)}{hint}",
                tok.pos,
            )
        return node

    def expression(self, min_bp: int) -> tuple[Node, int]:
        left, depth = self.operand()
        while True:
            tok = self.toks[self.i]
            bp = BINARY_BP.get(tok.text) if tok.kind == "ident" else None
            if bp is None or bp < min_bp:
                return left, depth
            # OData requires whitespace around operators: 'a eq(b)' is as wrong as 'aeq b'.
            if self.text[tok.pos - 1] not in WS:
                raise FilterError(f"expected whitespace before '{tok.text}' at position {tok.pos}", tok.pos)
            if tok.end < len(self.text) and self.text[tok.end] not in WS:
                raise FilterError(f"expected whitespace after '{tok.text}' at position {tok.end}", tok.end)
            self.i += 1
            if tok.text == "in" and self.toks[self.i].kind == "(":
                left, depth = self.in_list(left, tok)
                continue
            self.enter(tok)
            right, right_depth = self.expression(bp + 1)  # bp + 1: left-associative
            self.pending -= 1
            left_depth = depth - 1 if is_chain(tok.text, left) else depth
            depth = self.built(1 + max(left_depth, right_depth), tok)
            left = Binary(tok.text, left, right)

    def operand(self) -> tuple[Node, int]:
        tok = self.toks[self.i]
        if tok.kind == "-" or (tok.kind == "ident" and tok.text == "not"):
            if tok.kind == "ident" and tok.end < len(self.text) and self.text[tok.end] not in WS + "(":
                raise FilterError(f"expected whitespace after 'not' at position {tok.end}", tok.end)
            self.i += 1
            self.enter(tok)
            # 'not' takes the comparison that follows, as OData's grammar reads it (notExpr = "not" RWS
            # boolCommonExpr; FROST-Server and Microsoft Graph alike): not name eq 'x' is not (name eq 'x'),
            # and it stops at and/or. A minus binds tightest.
            inner, depth = self.expression(NOT_BP if tok.kind == "ident" else UNARY_BP)
            self.pending -= 1
            return Unary("neg" if tok.kind == "-" else "not", inner), self.built(depth + 1, tok)
        if tok.kind == "(":
            self.parens += 1
            if self.parens > MAX_DEPTH:
                raise self.too_deep(tok)
            self.i += 1
            node, depth = self.expression(0)
            self.expect(")", "')'")
            self.parens -= 1
            return node, depth
        if tok.kind == "literal":
            assert tok.value is not None
            self.i += 1
            return tok.value, 0
        if tok.kind != "ident":
            raise self.error("an expression", tok)
        word = tok.text
        if word in ("true", "false"):
            self.i += 1
            return Literal(word == "true", "bool"), 0
        if word == "null":
            self.i += 1
            return Literal(None, "null"), 0
        if word in RESERVED:
            raise self.error("an expression", tok)
        if self.toks[self.i + 1].kind == "(":
            return self.call(tok)
        if "." in word:
            if word in FUNCTIONS:
                raise FilterError(f"expected '(' after function '{word}' at position {tok.end}", tok.end)
            raise FilterError(f"invalid property name '{word}' at position {tok.pos}", tok.pos)
        self.i += 1
        segments = [word]
        self.indexes(segments)
        # A path is written without spaces: 'a/b'; a spaced '/' is left for the caller to reject.
        while (slash := self.toks[self.i]).kind == "/" and slash.pos == self.toks[self.i - 1].end:
            seg = self.toks[self.i + 1]
            if seg.kind != "ident" or "." in seg.text or seg.pos != slash.end:
                raise self.error("a property name right after '/'", seg._replace(pos=slash.end))
            if seg.text in LAMBDAS and (paren := self.toks[self.i + 2]).kind == "(" and paren.pos == seg.end:
                self.i += 2
                return self.lambda_(segments, seg)
            segments.append(seg.text)
            self.i += 2
            self.indexes(segments)
        return Path(tuple(segments)), 0

    def in_list(self, left: Node, in_tok: Token) -> tuple[Node, int]:
        """``x in (a, b)`` (OData 4.01 URL Conventions §5.1.1.1.12): x equals a member of the list, which is
        ``x eq a or x eq b``; the current token is '('."""
        self.i += 1
        self.enter(in_tok)
        items: list[Node] = []
        while True:
            items.append(self.expression(0)[0])
            tok = self.expect_one_of((",", ")"), "',' or ')'")
            if tok.kind == ")":
                break
        self.pending -= 1
        node: Node = Binary("eq", left, items[0])
        for item in items[1:]:
            node = Binary("or", node, Binary("eq", left, item))
        return node, self.built(node_depth(node), in_tok)

    def expect_one_of(self, kinds: tuple[str, ...], what: str) -> Token:
        tok = self.toks[self.i]
        if tok.kind not in kinds:
            raise self.error(what, tok)
        self.i += 1
        return tok

    def indexes(self, segments: list[str]) -> None:
        """The array indexes written right after a path segment (``intIntArray[0][1]``), each a segment of its own."""
        while (tok := self.toks[self.i]).kind == "index" and tok.pos == self.toks[self.i - 1].end:
            segments.append(tok.text)
            self.i += 1

    def lambda_(self, path: list[str], op_tok: Token) -> tuple[Node, int]:
        """``path/any(var: body)``, ``path/all(var: body)`` or ``path/any()``; the current token is '('."""
        op = op_tok.text
        self.i += 1
        if self.toks[self.i].kind == ")":
            if op == "all":
                raise FilterError(f"'all' needs a condition: all(x: ...) at position {op_tok.pos}", op_tok.pos)
            self.i += 1
            return Lambda(tuple(path), op, None, None), 1
        var = self.expect("ident", "a lambda variable name")
        if var.text in RESERVED or "." in var.text or var.text == path[0]:
            raise FilterError(f"'{var.text}' cannot name a lambda variable at position {var.pos}", var.pos)
        self.expect(":", "':' after the lambda variable")
        self.enter(op_tok)
        body, depth = self.expression(0)
        self.pending -= 1
        self.expect(")", "')'")
        return Lambda(tuple(path), op, var.text, body), self.built(depth + 1, op_tok)

    def call(self, name_tok: Token) -> tuple[Node, int]:
        name = name_tok.text
        if name not in FUNCTIONS:
            raise FilterError(f"unknown function '{name}' at position {name_tok.pos}", name_tok.pos)
        self.i += 2  # name and '('
        self.enter(name_tok)
        args: list[Node] = []
        depth = 0
        if self.toks[self.i].kind == ")":
            self.i += 1
        else:
            while True:
                arg, arg_depth = self.expression(0)
                args.append(arg)
                depth = max(depth, arg_depth)
                tok = self.toks[self.i]
                self.i += 1
                if tok.kind == ")":
                    break
                if tok.kind != ",":
                    raise self.error("',' or ')'", tok)
        self.pending -= 1
        lo, hi = FUNCTIONS[name]
        if not lo <= len(args) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} or {hi}"
            noun = "argument" if want == "1" else "arguments"
            raise FilterError(
                f"function '{name}' takes {want} {noun}, got {len(args)} at position {name_tok.pos}",
                name_tok.pos,
            )
        return Call(name, tuple(args)), self.built(depth + 1, name_tok)


def parse_filter(text: str, *, max_length: int = MAX_LENGTH) -> Node:
    """Parse a ``$filter`` expression; raises :class:`FilterError` (with the offset at fault) on bad input.

    ``max_length`` exists for re-parsing our own canonical text (``to_text`` output may be longer than
    the client's input); requests should keep the default.
    """
    if len(text) > max_length:
        raise FilterError(f"filter is too long: {len(text)} characters, at most {max_length}", max_length)
    try:
        return _Parser(text).parse()
    except RecursionError:  # the depth limits prevent this; kept so a deep caller stack still gets a 400
        raise FilterError("expression nested too deeply", None) from None
