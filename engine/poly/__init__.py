"""Integer polynomials, no torch: the core (arithmetic, prefix tokens, printing, verification), the lexer and
safe parser of typed input, and the classical decomposition."""
