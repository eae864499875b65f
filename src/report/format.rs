//! Number formatting for reports: every number is formatted here, in Rust, never in a template.
//! Negative numbers use the Unicode minus sign; intervals use an en dash between positive bounds
//! and " to " when a bound is negative, so "−0.02 to 0.05" never reads as a range of dashes.

/// `x` with `d` decimals, or "—" when undefined.
pub fn num(x: Option<f64>, d: usize) -> String {
    match x {
        Some(v) if v.is_finite() => {
            let s = format!("{v:.d$}");
            if let Some(rest) = s.strip_prefix('-') {
                if rest.chars().all(|c| c == '0' || c == '.') {
                    rest.to_string()
                } else {
                    format!("\u{2212}{rest}")
                }
            } else {
                s
            }
        }
        _ => "—".to_string(),
    }
}

/// A difference with an explicit sign: "+0.031", "−0.012".
pub fn signed(x: Option<f64>, d: usize) -> String {
    match x {
        Some(v) if v.is_finite() && v > 0.0 && num(Some(v), d) != num(Some(0.0), d) => {
            format!("+{}", num(Some(v), d))
        }
        other => num(other, d),
    }
}

/// An AUC: three decimals.
pub fn auc(x: Option<f64>) -> String {
    num(x, 3)
}

/// An interval "0.884–0.937" (or "−0.020 to 0.050").
pub fn interval(lo: Option<f64>, hi: Option<f64>, d: usize) -> String {
    match (lo, hi) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() => {
            if a < 0.0 || b < 0.0 {
                format!("{} to {}", num(Some(a), d), num(Some(b), d))
            } else {
                format!("{}\u{2013}{}", num(Some(a), d), num(Some(b), d))
            }
        }
        _ => "—".to_string(),
    }
}

/// An estimate with its interval: "0.912 (0.884–0.937)".
pub fn estimate(x: Option<f64>, lo: Option<f64>, hi: Option<f64>) -> String {
    format!("{} ({})", auc(x), interval(lo, hi, 3))
}

/// A difference with its interval: "+0.031 (−0.012 to 0.074)".
pub fn delta(x: Option<f64>, lo: Option<f64>, hi: Option<f64>) -> String {
    format!("{} ({})", signed(x, 3), interval(lo, hi, 3))
}

/// A p-value: "< 0.001", "0.012", "0.43".
pub fn p_value(p: Option<f64>) -> String {
    match p {
        Some(v) if v.is_finite() => {
            if v < 0.001 {
                "< 0.001".to_string()
            } else if v < 0.01 {
                format!("{v:.3}")
            } else {
                format!("{v:.2}")
            }
        }
        _ => "—".to_string(),
    }
}

/// A share as a percentage: "40.0%".
pub fn percent(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{:.1}%", v * 100.0),
        _ => "—".to_string(),
    }
}

/// A confidence level as a percentage: 0.95 → "95%".
pub fn level(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => {
            let p = v * 100.0;
            if (p - p.round()).abs() < 1e-9 {
                format!("{p:.0}%")
            } else {
                format!("{p:.1}%")
            }
        }
        _ => "—".to_string(),
    }
}

/// A duration in milliseconds for people: "850 ms", "12.3 s", "4 min 05 s".
pub fn duration_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        if s < 3600 {
            format!("{} min {:02} s", s / 60, s % 60)
        } else {
            format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_a_paper() {
        assert_eq!(
            estimate(Some(0.9123), Some(0.8841), Some(0.937)),
            "0.912 (0.884–0.937)"
        );
        assert_eq!(
            delta(Some(0.031), Some(-0.012), Some(0.074)),
            "+0.031 (−0.012 to 0.074)"
        );
        assert_eq!(signed(Some(-0.0001), 3), "0.000");
        assert_eq!(num(None, 3), "—");
        assert_eq!(p_value(Some(0.00001)), "< 0.001");
        assert_eq!(p_value(Some(0.0123)), "0.01");
        assert_eq!(p_value(Some(0.00456)), "0.005");
        assert_eq!(percent(Some(0.4)), "40.0%");
        assert_eq!(level(Some(0.95)), "95%");
        assert_eq!(duration_ms(12_345), "12.3 s");
        assert_eq!(duration_ms(245_000), "4 min 05 s");
    }
}
