//! DEPA's losses by expression (`loss_config` `{"expression", "components", "variables",
//! "reduction"}`, its `LossComposer`): per-sample components (loss classes with reduction
//! `none`, and `torch.exp`/`torch.log`/`torch.sqrt` of another component) combined by an
//! arithmetic expression (`+ - * / **`, parentheses, unary minus, numbers, names).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{LossClass, LossParams, class_and_params};

/// The most characters an expression may have.
pub const MAX_EXPRESSION_LEN: usize = 1000;

/// A loss by expression.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpressionLoss {
    /// The expression.
    pub expression: Expr,
    /// The components, in the order written (a function component reads an earlier one).
    pub components: Vec<(String, Component)>,
    /// Named constants.
    pub variables: BTreeMap<String, f64>,
}

/// A component: a per-sample loss, or a function of an earlier component.
#[derive(Debug, Clone, PartialEq)]
pub enum Component {
    /// A loss class computed per sample (`reduction` `none`).
    Loss(LossClass, LossParams),
    /// `f(±component)`.
    Function {
        /// The function.
        function: Function,
        /// The component it reads.
        input: String,
        /// Whether the input is negated (`-$name`).
        negate: bool,
    },
}

/// The elementwise functions a component may apply (`torch.exp`, `torch.log`, `torch.sqrt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `eˣ`.
    Exp,
    /// `ln x`.
    Log,
    /// `√x`.
    Sqrt,
}

/// An arithmetic expression over numbers and names.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A number.
    Num(f64),
    /// A component or a variable.
    Name(String),
    /// `-e`.
    Neg(Box<Expr>),
    /// `a op b`.
    Bin(Op, Box<Expr>, Box<Expr>),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`.
    Div,
    /// `**` (right-associative, binds tighter than unary minus on its left as in Python).
    Pow,
}

impl ExpressionLoss {
    /// The loss classes of the components (all of one task, checked by the pipeline).
    pub fn classes(&self) -> impl Iterator<Item = LossClass> + '_ {
        self.components.iter().filter_map(|(_, c)| match c {
            Component::Loss(class, _) => Some(*class),
            Component::Function { .. } => None,
        })
    }

    /// Parses the expression form (without `reduction`, which the caller reads).
    ///
    /// # Errors
    /// A reason naming the field: an unknown field, component, function or name, a component
    /// reading one defined after it, a syntax error with its character offset.
    pub fn from_json(m: &Map<String, Value>) -> Result<Self, String> {
        if let Some(k) = m
            .keys()
            .find(|k| !["expression", "components", "variables", "reduction"].contains(&k.as_str()))
        {
            return Err(format!(
                "unknown field `{k}` (expression, components, variables, reduction)"
            ));
        }
        let Some(Value::String(text)) = m.get("expression") else {
            return Err("`expression`: a string is required".into());
        };
        if text.len() > MAX_EXPRESSION_LEN {
            return Err(format!(
                "`expression`: longer than {MAX_EXPRESSION_LEN} characters"
            ));
        }
        let mut components: Vec<(String, Component)> = Vec::new();
        for (name, c) in m
            .get("components")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let c = component(name, c, &components)?;
            components.push((name.clone(), c));
        }
        if !components
            .iter()
            .any(|(_, c)| matches!(c, Component::Loss(..)))
        {
            return Err("`components`: at least one loss class is required".into());
        }
        let mut variables = BTreeMap::new();
        for (k, v) in m
            .get("variables")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let x = v
                .as_f64()
                .ok_or_else(|| format!("`variables.{k}`: a number is required"))?;
            variables.insert(k.clone(), x);
        }
        let expression = Parser::new(text)
            .parse()
            .map_err(|e| format!("`expression`: {e}"))?;
        let mut names = Vec::new();
        expression.names(&mut names);
        for n in names {
            if !variables.contains_key(n) && !components.iter().any(|c| c.0 == n) {
                return Err(format!(
                    "`expression`: `{n}` is neither a component nor a variable"
                ));
            }
        }
        Ok(Self {
            expression,
            components,
            variables,
        })
    }
}

fn component(name: &str, c: &Value, earlier: &[(String, Component)]) -> Result<Component, String> {
    let at = |r: String| format!("`components.{name}`: {r}");
    let Some(m) = c.as_object() else {
        return Err(at("expected {\"class\", \"params\"}".into()));
    };
    let class = m.get("class").and_then(Value::as_str).unwrap_or("");
    let function = match class.strip_prefix("torch.") {
        Some("exp") => Some(Function::Exp),
        Some("log") => Some(Function::Log),
        Some("sqrt") => Some(Function::Sqrt),
        _ => None,
    };
    let Some(function) = function else {
        // A loss class, per sample.
        let mut m = m.clone();
        let none = m
            .get_mut("params")
            .and_then(Value::as_object_mut)
            .and_then(|p| p.remove("reduction"));
        if none.as_ref().is_some_and(|r| r != "none") {
            return Err(at(
                "a component's loss is per sample: reduction `none`".into()
            ));
        }
        let (class, params) = class_and_params(m).map_err(at)?;
        return Ok(Component::Loss(class, params));
    };
    let input = m
        .get("params")
        .and_then(|p| p.get("input"))
        .and_then(Value::as_str)
        .ok_or_else(|| at("params.input: `$name` or `-$name` of an earlier component".into()))?;
    let (negate, rest) = match input.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, input),
    };
    let reference = rest.strip_prefix('$').unwrap_or(rest);
    if !earlier.iter().any(|(n, _)| n == reference) {
        return Err(at(format!(
            "params.input `{input}`: no component `{reference}` before it"
        )));
    }
    Ok(Component::Function {
        function,
        input: reference.to_string(),
        negate,
    })
}

impl Expr {
    fn names<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Num(_) => {}
            Self::Name(n) => out.push(n),
            Self::Neg(e) => e.names(out),
            Self::Bin(_, a, b) => {
                a.names(out);
                b.names(out);
            }
        }
    }
}

/// A recursive-descent parser of Python's arithmetic precedence: `+ -` < `* /` < unary `-` <
/// `**` (right-associative; `-a ** b` is `-(a ** b)`).
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn parse(mut self) -> Result<Expr, String> {
        let e = self.sum()?;
        self.skip();
        if self.i < self.s.len() {
            return Err(format!(
                "unexpected `{}` at {}",
                self.s[self.i] as char, self.i
            ));
        }
        Ok(e)
    }

    fn skip(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, t: &str) -> bool {
        self.skip();
        if self.s[self.i..].starts_with(t.as_bytes()) {
            self.i += t.len();
            true
        } else {
            false
        }
    }

    fn sum(&mut self) -> Result<Expr, String> {
        let mut e = self.product()?;
        loop {
            let op = if self.eat("+") {
                Op::Add
            } else if self.eat("-") {
                Op::Sub
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        loop {
            self.skip();
            let op = if self.s[self.i..].starts_with(b"**") {
                return Ok(e);
            } else if self.eat("*") {
                Op::Mul
            } else if self.eat("/") {
                Op::Div
            } else {
                return Ok(e);
            };
            e = Expr::Bin(op, Box::new(e), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("-") {
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.eat("+") {
            return self.unary();
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, String> {
        let base = self.atom()?;
        if self.eat("**") {
            // The exponent may carry a unary minus (`a ** -b`), and binds to the right.
            let exp = self.unary()?;
            return Ok(Expr::Bin(Op::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        self.skip();
        let start = self.i;
        if self.eat("(") {
            let e = self.sum()?;
            if !self.eat(")") {
                return Err(format!("`(` at {start} is not closed"));
            }
            return Ok(e);
        }
        let c = *self.s.get(self.i).ok_or("unexpected end")?;
        if c.is_ascii_digit() || c == b'.' {
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'.' || *c == b'e' || *c == b'E')
            {
                self.i += 1;
            }
            let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            return t
                .parse()
                .map(Expr::Num)
                .map_err(|_| format!("`{t}` at {start} is not a number"));
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while self
                .s
                .get(self.i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                self.i += 1;
            }
            let name = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
            self.skip();
            if self.s.get(self.i) == Some(&b'(') || self.s.get(self.i) == Some(&b'.') {
                return Err(format!(
                    "`{name}` at {start}: calls and attributes are not allowed in an expression"
                ));
            }
            return Ok(Expr::Name(name.to_string()));
        }
        Err(format!("unexpected `{}` at {start}", c as char))
    }
}
