//! The Jinja engine of chat templates (feature `jinja`): minijinja's sandboxed environment (no file or network
//! access, bounded work through fuel) with the Python-compatible string methods Hugging Face templates use,
//! `raise_exception` and `strftime_now`.

use minijinja::{context, Environment, ErrorKind};
use serde_json::Value;

use super::ChatError;

/// Instructions a template may execute before it is stopped (guards against runaway templates).
const TEMPLATE_FUEL: u64 = 2_000_000;

const TEMPLATE_NAME: &str = "chat";

/// A compiled Jinja chat template.
#[derive(Debug)]
pub(super) struct JinjaTemplate {
    env: Environment<'static>,
}

impl JinjaTemplate {
    /// Compiles `source`.
    pub(super) fn new(source: &str) -> Result<JinjaTemplate, ChatError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| ChatError::InvalidTemplate(e.to_string()))?;
        Ok(JinjaTemplate { env })
    }

    /// Renders `messages` (already in the shape templates see) with the usual context variables.
    pub(super) fn render(
        &self,
        messages: &[Value],
        add_generation_prompt: bool,
        bos: &str,
        eos: &str,
    ) -> Result<String, ChatError> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(|e| ChatError::InvalidTemplate(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos,
            eos_token => eos,
        })
        .map_err(|e| ChatError::Render(format!("{e:#}")))
    }
}

/// `strftime_now(fmt)` for templates that print today's date: supports `%d %m %Y %y %b %B %H %M %S %%`.
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let tod = secs % 86_400;
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out += &format!("{d:02}"),
            Some('m') => out += &format!("{m:02}"),
            Some('Y') => out += &y.to_string(),
            Some('y') => out += &format!("{:02}", y % 100),
            Some('b') => out += &MONTHS[(m - 1) as usize][..3],
            Some('B') => out += MONTHS[(m - 1) as usize],
            Some('H') => out += &format!("{:02}", tod / 3600),
            Some('M') => out += &format!("{:02}", tod / 60 % 60),
            Some('S') => out += &format!("{:02}", tod % 60),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
