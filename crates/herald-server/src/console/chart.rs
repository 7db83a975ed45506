//! The deliveries chart: stacked bars per time bucket as inline SVG, drawn
//! on the server (no script, no external asset). Screen readers get the
//! totals in the label and each bar's counts in its `<title>`.

use herald_core::Timestamp;
use herald_store::DeliveryBucket;
use maud::{html, Markup};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
/// Room under the bars for the time labels.
const AXIS: f64 = 18.0;

/// `count` buckets of `bucket_millis` from `since`; `buckets` holds the
/// non-empty ones (as the store answers them).
pub(super) fn render(
    buckets: &[DeliveryBucket],
    since: Timestamp,
    bucket_millis: i64,
    count: usize,
) -> Markup {
    let mut slots = vec![(0u64, 0u64, 0u64); count];
    for bucket in buckets {
        let index = (bucket.start.0 - since.0).div_euclid(bucket_millis.max(1));
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| slots.get_mut(i)) {
            *slot = (bucket.succeeded, bucket.failed, bucket.waiting);
        }
    }
    let (succeeded, failed, waiting) = slots.iter().fold((0, 0, 0), |total, slot| {
        (total.0 + slot.0, total.1 + slot.1, total.2 + slot.2)
    });
    let tallest = slots
        .iter()
        .map(|(ok, bad, wait)| ok + bad + wait)
        .max()
        .unwrap_or(0)
        .max(1);
    let slot_width = WIDTH / count.max(1) as f64;
    let bar_width = (slot_width * 0.8).max(1.0);
    let plot_height = HEIGHT - AXIS;
    let scale = |value: u64| value as f64 * plot_height / tallest as f64;
    let summary =
        format!("Deliveries by hour: {succeeded} succeeded, {failed} failed, {waiting} waiting");
    html! {
        figure.chart-figure {
            svg.chart viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary)
                data-succeeded=(succeeded) data-failed=(failed) data-waiting=(waiting) {
                line.axis x1="0" y1=(plot_height) x2=(WIDTH) y2=(plot_height) {}
                @for (index, (ok, bad, wait)) in slots.iter().enumerate() {
                    @let x = index as f64 * slot_width + (slot_width - bar_width) / 2.0;
                    @let start = Timestamp(since.0 + index as i64 * bucket_millis);
                    @let label = start.to_datetime().format("%H:%M").to_string();
                    g {
                        title { (label) " UTC: " (ok) " succeeded, " (bad) " failed, " (wait) " waiting" }
                        @let ok_top = plot_height - scale(*ok);
                        @let bad_top = ok_top - scale(*bad);
                        @let wait_top = bad_top - scale(*wait);
                        @if *ok > 0 { rect.ok x=(fmt(x)) y=(fmt(ok_top)) width=(fmt(bar_width)) height=(fmt(scale(*ok))) {} }
                        @if *bad > 0 { rect.bad x=(fmt(x)) y=(fmt(bad_top)) width=(fmt(bar_width)) height=(fmt(scale(*bad))) {} }
                        @if *wait > 0 { rect.wait x=(fmt(x)) y=(fmt(wait_top)) width=(fmt(bar_width)) height=(fmt(scale(*wait))) {} }
                        // Invisible full-height target so every hour has a tooltip.
                        rect x=(fmt(index as f64 * slot_width)) y="0" width=(fmt(slot_width)) height=(fmt(plot_height)) fill="transparent" {}
                    }
                    @if index % 4 == 0 {
                        text x=(fmt(x)) y=(fmt(HEIGHT - 4.0)) { (label) }
                    }
                }
            }
            figcaption.legend {
                span.ok { (succeeded) " succeeded" }
                span.bad { (failed) " failed" }
                span.wait { (waiting) " waiting" }
            }
        }
    }
}

fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(start: i64, succeeded: u64, failed: u64, waiting: u64) -> DeliveryBucket {
        DeliveryBucket {
            start: Timestamp(start),
            succeeded,
            failed,
            waiting,
        }
    }

    #[test]
    fn the_chart_totals_its_buckets_and_draws_a_bar_per_outcome() {
        let svg = render(
            &[bucket(0, 3, 1, 0), bucket(2_000, 0, 2, 1)],
            Timestamp(0),
            1_000,
            4,
        )
        .into_string();
        assert!(
            svg.contains(r#"aria-label="Deliveries by hour: 3 succeeded, 3 failed, 1 waiting""#)
        );
        assert_eq!(svg.matches(r#"<rect class="ok""#).count(), 1);
        assert_eq!(svg.matches(r#"<rect class="bad""#).count(), 2);
        assert_eq!(svg.matches(r#"<rect class="wait""#).count(), 1);
        // The tallest stack (4) fills the plot.
        assert!(svg.contains(&format!(r#"y="{}""#, fmt(0.0))));
    }

    #[test]
    fn buckets_outside_the_window_are_ignored() {
        let svg = render(
            &[bucket(-1_000, 5, 0, 0), bucket(9_000, 5, 0, 0)],
            Timestamp(0),
            1_000,
            4,
        )
        .into_string();
        assert!(svg.contains("0 succeeded, 0 failed, 0 waiting"));
        assert!(!svg.contains(r#"<rect class="ok""#));
    }
}
