//! The cost table as text, after `plan`'s real -> mapped table.

use super::model::Source;
use super::CostReport;
use crate::output::table;

fn quantity(q: f64) -> String {
    if q.fract() == 0.0 {
        format!("{q:.0}")
    } else {
        format!("{q:.2}")
    }
}

/// Unit prices keep their precision (0.0052 an hour matters at 730 hours).
fn unit_price(usd: f64) -> String {
    let s = format!("{usd:.6}");
    let s = s.trim_end_matches('0');
    let s = if s.ends_with('.') {
        format!("{s}00")
    } else {
        s.to_string()
    };
    format!("${s}")
}

pub fn human(r: &CostReport) -> String {
    let t = &r.table;
    let total = |o: &super::model::OptionCost| {
        if o.not_priced.is_empty() {
            format!("${:.2}", o.total_usd)
        } else {
            format!(
                "${:.2}, excluding {} not priced",
                o.total_usd,
                o.not_priced.len()
            )
        }
    };
    let summary: Vec<Vec<String>> = t
        .options
        .iter()
        .map(|o| vec![o.name.clone(), total(o)])
        .collect();
    // One table for every option's lines, each option a heading row, so the columns line up across options.
    let mut rows = Vec::new();
    for o in &t.options {
        rows.push(vec![
            o.name.clone(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        for l in &o.lines {
            let price = match (l.unit_usd, l.source) {
                (Some(u), Some(s)) => format!(
                    "{} /{}{}",
                    unit_price(u),
                    l.unit,
                    if s == Source::Builtin {
                        " (built-in)"
                    } else {
                        ""
                    }
                ),
                _ => "not priced".to_string(),
            };
            rows.push(vec![
                format!("  {}", l.what),
                format!("{} {}", quantity(l.quantity), l.unit),
                price,
                l.monthly_usd
                    .map(|m| format!("${m:.2}"))
                    .unwrap_or_else(|| "-".into()),
            ]);
        }
        let label = if o.not_priced.is_empty() {
            "  total".to_string()
        } else {
            format!("  total, excluding {} not priced", o.not_priced.len())
        };
        rows.push(vec![
            label,
            String::new(),
            String::new(),
            format!("${:.2}", o.total_usd),
        ]);
    }
    let mut s = format!(
        "\ncost a month for {} GB across the link{}, {} tunnel hosts, USD:\n",
        quantity(t.traffic_gb),
        if t.ha { " with --ha" } else { "" },
        t.instance_type
    );
    s.push_str(&table(&["option", "monthly"], &summary));
    s.push('\n');
    s.push_str(&table(
        &["item", "quantity", "unit price", "monthly"],
        &rows,
    ));
    for n in &t.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(quantity(730.0), "730");
        assert_eq!(quantity(12.5), "12.50");
        assert_eq!(unit_price(0.0208), "$0.0208");
        assert_eq!(unit_price(0.02), "$0.02");
        assert_eq!(unit_price(1.0), "$1.00");
    }

    #[test]
    fn every_option_line_and_note_is_shown() {
        let i = crate::cost::model::CostInput {
            east_region: "us-east-1".into(),
            west_region: "eu-west-1".into(),
            instance_type: "t3.small".into(),
            traffic_gb: 100.0,
            ha: true,
        };
        let r = crate::cost::report(&i, crate::cost::lookup::offline(&i, "test: offline"));
        let h = human(&r);
        for o in &r.table.options {
            assert!(h.contains(&o.name));
            assert!(h.contains(&format!("${:.2}", o.total_usd)));
            for l in &o.lines {
                assert!(h.contains(&l.what), "{}", l.what);
            }
        }
        for n in &r.table.notes {
            assert!(h.contains(n));
        }
        assert!(h.contains("not priced") && h.contains("total, excluding 2 not priced"));
        assert!(h.contains("with --ha"));
    }
}
