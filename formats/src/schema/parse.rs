//! The schema language's parser.

use super::{Field, FieldType, Schema, SchemaParseError, Type, VecElem};

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

const SCALARS: &[(&str, Type)] = &[
    ("bool", Type::Bool),
    ("int8", Type::Int(8)),
    ("int16", Type::Int(16)),
    ("int32", Type::Int(32)),
    ("int64", Type::Int(64)),
    ("int", Type::Int(64)),
    ("uint8", Type::UInt(8)),
    ("uint16", Type::UInt(16)),
    ("uint32", Type::UInt(32)),
    ("uint64", Type::UInt(64)),
    ("float16", Type::Float16),
    ("fp16", Type::Float16),
    ("float32", Type::Float32),
    ("fp32", Type::Float32),
    ("float64", Type::Float64),
    ("fp64", Type::Float64),
    ("float", Type::Float64),
    ("string", Type::String),
    ("str", Type::String),
    ("bytes", Type::Bytes),
    ("date", Type::Date),
    ("timestamp", Type::Timestamp),
    ("image", Type::Image),
    ("audio", Type::Audio),
    ("video", Type::Video),
    ("json", Type::Json),
    ("blob", Type::Blob),
    ("any", Type::Any),
];

impl<'a> Parser<'a> {
    fn err<T>(&self, expected: &str) -> Result<T, SchemaParseError> {
        let rest = &self.text[self.pos..];
        let found = match rest.chars().next() {
            None => "end of input".to_string(),
            Some(_) => format!("'{}'", rest.chars().take(12).collect::<String>()),
        };
        Err(SchemaParseError {
            position: self.pos,
            expected: expected.to_string(),
            found,
            text: self.text.to_string(),
        })
    }

    fn ws(&mut self) {
        while self.text[self.pos..].starts_with(char::is_whitespace) {
            self.pos += self.text[self.pos..]
                .chars()
                .next()
                .map(char::len_utf8)
                .unwrap_or(1);
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.text[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SchemaParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.err(&format!("'{c}'"))
        }
    }

    fn ident(&mut self) -> Option<&'a str> {
        self.ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '.'))
            .unwrap_or(rest.len());
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some(&rest[..len])
    }

    fn number(&mut self) -> Result<usize, SchemaParseError> {
        self.ws();
        let rest = &self.text[self.pos..];
        let len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        match rest[..len].parse::<usize>() {
            Ok(n) if n > 0 => {
                self.pos += len;
                Ok(n)
            }
            _ => self.err("a positive integer"),
        }
    }

    /// `name: type` pairs separated by `sep` until `end` (or the end of input when `None`).
    fn fields(&mut self, top: bool) -> Result<Vec<Field>, SchemaParseError> {
        let mut fields: Vec<Field> = Vec::new();
        loop {
            let start = self.pos;
            let Some(name) = self.ident() else {
                return self.err("a column name");
            };
            if fields.iter().any(|f| f.name == name) {
                self.pos = start;
                self.ws();
                return self.err(&format!("a new name ('{name}' is already a column)"));
            }
            self.expect(':')?;
            let ft = self.field_type()?;
            fields.push(Field {
                name: name.to_string(),
                ty: ft.ty,
                nullable: ft.nullable,
            });
            if self.eat(',') || (top && self.eat('|')) {
                continue;
            }
            return Ok(fields);
        }
    }

    fn field_type(&mut self) -> Result<FieldType, SchemaParseError> {
        let ty = self.ty()?;
        let nullable = self.eat('?');
        Ok(FieldType { ty, nullable })
    }

    fn ty(&mut self) -> Result<Type, SchemaParseError> {
        let before = self.pos;
        let Some(word) = self.ident() else {
            return self.err("a type");
        };
        let lower = word.to_ascii_lowercase();
        match lower.as_str() {
            "list" => {
                self.expect('<')?;
                // `list<a: T, …>` is a list of structs; `list<T>` a list of T.
                let save = self.pos;
                let shorthand = self.ident().is_some() && self.eat(':');
                self.pos = save;
                let item = if shorthand {
                    FieldType {
                        ty: Type::Struct(self.fields(false)?),
                        nullable: false,
                    }
                } else {
                    self.field_type()?
                };
                self.expect('>')?;
                Ok(Type::List(Box::new(item)))
            }
            "dict" | "map" => {
                self.expect('<')?;
                let k = self.field_type()?;
                self.expect(',')?;
                let v = self.field_type()?;
                self.expect('>')?;
                Ok(Type::Dict(Box::new(k), Box::new(v)))
            }
            "struct" => {
                self.expect('<')?;
                let f = self.fields(false)?;
                self.expect('>')?;
                Ok(Type::Struct(f))
            }
            "vector" => {
                self.expect('<')?;
                let n = self.number()?;
                self.expect(',')?;
                let elem = match self.ident().map(str::to_ascii_lowercase).as_deref() {
                    Some("fp16" | "float16") => VecElem::Fp16,
                    Some("fp32" | "float32") => VecElem::Fp32,
                    Some("fp64" | "float64") => VecElem::Fp64,
                    _ => return self.err("fp16, fp32 or fp64"),
                };
                self.expect('>')?;
                Ok(Type::Vector(n, elem))
            }
            "tensor" => {
                self.expect('<')?;
                let dtype = self.ty()?;
                if !matches!(
                    dtype,
                    Type::Bool
                        | Type::Int(_)
                        | Type::UInt(_)
                        | Type::Float16
                        | Type::Float32
                        | Type::Float64
                ) {
                    return self.err("a numeric or bool tensor element type");
                }
                self.expect(',')?;
                self.expect('[')?;
                let mut dims = vec![self.number()?];
                while self.eat(',') {
                    dims.push(self.number()?);
                }
                self.expect(']')?;
                self.expect('>')?;
                Ok(Type::Tensor(Box::new(dtype), dims))
            }
            _ => match SCALARS.iter().find(|(n, _)| *n == lower) {
                Some((_, t)) => Ok(t.clone()),
                None => {
                    self.pos = before;
                    self.ws();
                    self.err("a type (bool, int, float, str, bytes, date, timestamp, list<…>, dict<…>, struct<…>, vector<…>, tensor<…>, image, audio, video, json, blob, any)")
                }
            },
        }
    }
}

impl Schema {
    /// Parses the schema language.
    pub fn parse(text: &str) -> Result<Schema, SchemaParseError> {
        let mut p = Parser { text, pos: 0 };
        let fields = p.fields(true)?;
        p.ws();
        if p.pos != text.len() {
            return p.err("',' or '|' between columns, or the end");
        }
        Ok(Schema { fields })
    }
}
