//! The tokenizer of label selector strings (Kubernetes' `labels.Lexer`).

/// One token of a selector string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Token {
    /// A key or value.
    Identifier(String),
    /// `!`
    DoesNotExist,
    /// `=`
    Equals,
    /// `==`
    DoubleEquals,
    /// `!=`
    NotEquals,
    /// `in`
    In,
    /// `notin`
    NotIn,
    /// `(`
    OpenParen,
    /// `)`
    CloseParen,
    /// `,`
    Comma,
    /// `>`
    GreaterThan,
    /// `<`
    LessThan,
    /// The end of the input.
    End,
}

impl Token {
    /// How the token reads in messages.
    pub(super) fn describe(&self) -> String {
        match self {
            Token::Identifier(s) => format!("identifier '{s}'"),
            Token::DoesNotExist => "'!'".into(),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::NotEquals => "'!='".into(),
            Token::In => "'in'".into(),
            Token::NotIn => "'notin'".into(),
            Token::OpenParen => "'('".into(),
            Token::CloseParen => "')'".into(),
            Token::Comma => "','".into(),
            Token::GreaterThan => "'>'".into(),
            Token::LessThan => "'<'".into(),
            Token::End => "end of string".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a selector string into tokens; never fails (bad sequences fail in the parser).
pub(super) fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if is_special(c) {
            chars.next();
            let next = chars.peek().copied();
            let token = match (c, next) {
                ('=', Some('=')) => {
                    chars.next();
                    Token::DoubleEquals
                }
                ('!', Some('=')) => {
                    chars.next();
                    Token::NotEquals
                }
                ('!', _) => Token::DoesNotExist,
                ('=', _) => Token::Equals,
                ('(', _) => Token::OpenParen,
                (')', _) => Token::CloseParen,
                (',', _) => Token::Comma,
                ('>', _) => Token::GreaterThan,
                _ => Token::LessThan,
            };
            tokens.push(token);
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || is_special(c) {
                break;
            }
            word.push(c);
            chars.next();
        }
        tokens.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier(word),
        });
    }
    tokens.push(Token::End);
    tokens
}
