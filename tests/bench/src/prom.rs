//! Prometheus / OpenMetrics text: parsing, counter sums and histogram percentiles (linear interpolation
//! inside a bucket, as Prometheus' `histogram_quantile` and upstream's kwok gate compute them).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::stats::round;

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name as written (with `_total`, `_bucket` … suffixes).
    pub name: String,
    /// Label pairs.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// The samples in text order.
    pub samples: Vec<Sample>,
}

impl Scrape {
    /// Parses exposition text; lines that do not parse are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// Sum of `name` over the label sets that contain every pair of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && matches(&s.labels, filter))
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The histogram `base` summed over every label set (like `sum by (le)`), if it exists.
    pub fn histogram(&self, base: &str) -> Option<Histogram> {
        let bucket = format!("{base}_bucket");
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == bucket) {
            let Some(le) = s.labels.get("le").and_then(|v| parse_value(v)) else {
                continue;
            };
            buckets.entry(le.to_bits()).or_insert((le, 0.0)).1 += s.value;
        }
        if buckets.is_empty() {
            return None;
        }
        let mut buckets: Vec<(f64, f64)> = buckets.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Histogram {
            buckets,
            count: self.sum(&format!("{base}_count"), &[]),
            sum: self.sum(&format!("{base}_sum"), &[]),
        })
    }

    /// Sums `name` grouped by the values of `keys` (e.g. verb and resource), over matching label sets.
    pub fn grouped(
        &self,
        name: &str,
        keys: &[&str],
        filter: &[(&str, &str)],
    ) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self
            .samples
            .iter()
            .filter(|s| s.name == name && matches(&s.labels, filter))
        {
            let key: Vec<&str> = keys
                .iter()
                .map(|k| s.labels.get(*k).map_or("", String::as_str))
                .collect();
            *out.entry(key.join(" ").trim().to_string()).or_insert(0.0) += s.value;
        }
        out
    }
}

fn matches(labels: &BTreeMap<String, String>, filter: &[(&str, &str)]) -> bool {
    filter
        .iter()
        .all(|(k, v)| labels.get(*k).is_some_and(|x| x == v))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => v.parse().ok(),
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let (labels, after) = parse_labels(&line[open + 1..])?;
            (&line[..open], labels, after)
        }
        None => {
            let (name, rest) = line.split_once(char::is_whitespace)?;
            (name, BTreeMap::new(), rest)
        }
    };
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.trim().to_string(),
        labels,
        value,
    })
}

/// Parses `k="v",k2="v2"}` and returns the labels and the text after the closing brace.
fn parse_labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after) = s.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_string(), value);
        s = &after[end + 2..];
    }
}

/// A cumulative histogram: `(upper bound, cumulative count)` ascending, plus count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Cumulative buckets, ascending by upper bound; the last is usually `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    /// Number of observations.
    pub count: f64,
    /// Sum of observations.
    pub sum: f64,
}

impl Histogram {
    /// The observations made since `before` (bucket-wise difference of two scrapes of one process).
    pub fn since(&self, before: Option<&Histogram>) -> Histogram {
        let Some(before) = before else {
            return self.clone();
        };
        let prior = |le: f64| {
            before
                .buckets
                .iter()
                .find(|(b, _)| b.to_bits() == le.to_bits())
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, (c - prior(le)).max(0.0)))
                .collect(),
            count: (self.count - before.count).max(0.0),
            sum: (self.sum - before.sum).max(0.0),
        }
    }

    /// The `q` quantile (0–1), linearly interpolated inside its bucket; the largest finite bound if it
    /// falls in `+Inf`; None without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, cum) in &self.buckets {
            if cum >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let width = cum - lower.1;
                let frac = if width > 0.0 {
                    (rank - lower.1) / width
                } else {
                    0.0
                };
                return Some(lower.0 + (le - lower.0) * frac);
            }
            lower = (le, cum);
        }
        Some(lower.0)
    }

    /// p50/p90/p99 and mean, multiplied by `scale` (e.g. 1000 to turn seconds into milliseconds).
    pub fn summary(&self, scale: f64) -> HistogramSummary {
        let q = |p| self.quantile(p).map(|v| round(v * scale));
        HistogramSummary {
            count: self.count,
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            mean_ms: (self.count > 0.0).then(|| round(self.sum / self.count * scale)),
        }
    }
}

/// Percentiles of a controller histogram over one measured phase, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistogramSummary {
    /// Observations in the phase.
    pub count: f64,
    /// Interpolated median.
    pub p50_ms: Option<f64>,
    /// Interpolated 90th percentile.
    pub p90_ms: Option<f64>,
    /// Interpolated 99th percentile.
    pub p99_ms: Option<f64>,
    /// Sum / count.
    pub mean_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP x_ms latency
# TYPE x_ms histogram
x_ms_bucket{ns="a",le="100.0"} 2
x_ms_bucket{ns="a",le="250.0"} 4
x_ms_bucket{ns="a",le="+Inf"} 4
x_ms_bucket{ns="b",le="100.0"} 0
x_ms_bucket{ns="b",le="250.0"} 4
x_ms_bucket{ns="b",le="+Inf"} 4
x_ms_count{ns="a"} 4
x_ms_count{ns="b"} 4
x_ms_sum{ns="a"} 400
x_ms_sum{ns="b"} 800
req_total{verb="POST",msg="a \"q\", b"} 3
req_total{verb="GET"} 5 1700000000
plain 1.5
"#;

    #[test]
    fn parses_labels_escapes_and_plain_samples() {
        let s = Scrape::parse(TEXT);
        assert_eq!(s.sum("req_total", &[]), 8.0);
        assert_eq!(s.sum("req_total", &[("verb", "POST")]), 3.0);
        assert_eq!(s.sum("plain", &[]), 1.5);
        let post = s.samples.iter().find(|x| x.name == "req_total");
        assert_eq!(
            post.and_then(|p| p.labels.get("msg")).map(String::as_str),
            Some("a \"q\", b")
        );
        assert_eq!(s.grouped("req_total", &["verb"], &[])["GET"], 5.0);
    }

    #[test]
    fn histogram_sums_label_sets_and_interpolates() {
        let h = Scrape::parse(TEXT).histogram("x_ms").expect("histogram");
        assert_eq!(
            h.buckets,
            vec![(100.0, 2.0), (250.0, 8.0), (f64::INFINITY, 8.0)]
        );
        // rank 4 of 8: 2 below 100, then 2 of the 6 in (100, 250].
        assert_eq!(h.quantile(0.5), Some(150.0));
        assert_eq!(h.quantile(0.125), Some(50.0));
        let s = h.summary(1.0);
        assert_eq!((s.count, s.mean_ms), (8.0, Some(150.0)));
    }

    #[test]
    fn a_quantile_in_the_inf_bucket_is_the_largest_finite_bound() {
        let h = Histogram {
            buckets: vec![(1.0, 1.0), (f64::INFINITY, 10.0)],
            count: 10.0,
            sum: 50.0,
        };
        assert_eq!(h.quantile(0.99), Some(1.0));
    }

    #[test]
    fn since_subtracts_an_earlier_scrape() {
        let before = Histogram {
            buckets: vec![(1.0, 1.0), (f64::INFINITY, 2.0)],
            count: 2.0,
            sum: 3.0,
        };
        let after = Histogram {
            buckets: vec![(1.0, 4.0), (f64::INFINITY, 6.0)],
            count: 6.0,
            sum: 9.0,
        };
        let d = after.since(Some(&before));
        assert_eq!(
            (d.buckets, d.count, d.sum),
            (vec![(1.0, 3.0), (f64::INFINITY, 4.0)], 4.0, 6.0)
        );
        assert_eq!(Histogram::since(&after, None).count, 6.0);
        let empty = before.since(Some(&before));
        assert_eq!(empty.quantile(0.5), None);
    }
}
