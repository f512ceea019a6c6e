//! A thin wrapper over the CloudWatch client: one method per API call, each returning [`AwsError`] with the side,
//! profile, IAM action and resource. Changes are recorded instead of made under `--dry-run` (reads still go to AWS).

use super::caller::Caller;
use super::ec2::DryRunLog;
use super::error::AwsError;
use super::tags::LinkTags;
use crate::side::Side;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, Statistic, Tag,
};
use aws_sdk_cloudwatch::Client;
use std::time::SystemTime;

type R<T> = Result<T, AwsError>;

/// What PutMetricAlarm is given: one alarm on one metric of the link's namespace and dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    /// (name, value) pairs.
    pub dimensions: Vec<(String, String)>,
    pub statistic: Statistic,
    pub period: i32,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: i32,
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub treat_missing_data: String,
    /// AlarmActions and OKActions (SNS topic ARNs).
    pub actions: Vec<String>,
}

impl AlarmSpec {
    /// Whether an alarm as DescribeAlarms lists it is configured as this spec says (so `up` need not put it again).
    pub fn matches(&self, a: &MetricAlarm) -> bool {
        let mut dims: Vec<(String, String)> = a
            .dimensions()
            .iter()
            .map(|d| {
                (
                    d.name().unwrap_or_default().to_string(),
                    d.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        dims.sort();
        let mut want = self.dimensions.clone();
        want.sort();
        let mut ok_actions = a.ok_actions().to_vec();
        let mut alarm_actions = a.alarm_actions().to_vec();
        ok_actions.sort();
        alarm_actions.sort();
        let mut actions = self.actions.clone();
        actions.sort();
        a.alarm_name() == Some(self.name.as_str())
            && a.namespace() == Some(self.namespace.as_str())
            && a.metric_name() == Some(self.metric.as_str())
            && dims == want
            && a.statistic() == Some(&self.statistic)
            && a.period() == Some(self.period)
            && a.evaluation_periods() == Some(self.evaluation_periods)
            && a.datapoints_to_alarm() == Some(self.datapoints_to_alarm)
            && a.threshold() == Some(self.threshold)
            && a.comparison_operator() == Some(&self.comparison)
            && a.treat_missing_data() == Some(self.treat_missing_data.as_str())
            && alarm_actions == actions
            && ok_actions == actions
    }
}

/// The latest datapoint of one metric: (metric name, seconds since the epoch, value); None when it has none.
pub type Latest = (String, Option<(i64, f64)>);

#[derive(Debug, Clone)]
pub struct CloudWatch {
    client: Client,
    caller: Caller,
}

impl CloudWatch {
    pub fn new(client: Client, side: Side, profile: &str, dry: Option<DryRunLog>) -> Self {
        CloudWatch {
            client,
            caller: Caller::new(side, profile, dry),
        }
    }

    /// Create or update the alarm. PutMetricAlarm "creates or updates an alarm"; on an update the tags given are
    /// ignored (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html).
    pub async fn put_metric_alarm(&self, spec: &AlarmSpec, tags: &LinkTags) -> R<()> {
        let action = "cloudwatch:PutMetricAlarm";
        let detail = format!(
            "AlarmName={} {}/{} {:?} Period={} EvaluationPeriods={} DatapointsToAlarm={} {:?} {} TreatMissingData={} Actions=[{}]",
            spec.name,
            spec.namespace,
            spec.metric,
            spec.statistic,
            spec.period,
            spec.evaluation_periods,
            spec.datapoints_to_alarm,
            spec.comparison,
            spec.threshold,
            spec.treat_missing_data,
            spec.actions.join(",")
        );
        if self.caller.planned(action, detail) {
            return Ok(());
        }
        let dimensions = spec
            .dimensions
            .iter()
            .map(|(n, v)| Dimension::builder().name(n).value(v).build())
            .collect();
        let tags = tags
            .tags()
            .iter()
            .filter_map(|t| Some(Tag::builder().key(t.key()?).value(t.value()?).build()))
            .collect();
        self.client
            .put_metric_alarm()
            .alarm_name(&spec.name)
            .alarm_description(&spec.description)
            .namespace(&spec.namespace)
            .metric_name(&spec.metric)
            .set_dimensions(Some(dimensions))
            .statistic(spec.statistic.clone())
            .period(spec.period)
            .evaluation_periods(spec.evaluation_periods)
            .datapoints_to_alarm(spec.datapoints_to_alarm)
            .threshold(spec.threshold)
            .comparison_operator(spec.comparison.clone())
            .treat_missing_data(&spec.treat_missing_data)
            .set_alarm_actions(Some(spec.actions.clone()))
            .set_ok_actions(Some(spec.actions.clone()))
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(self.caller.err(action, &spec.name))?;
        Ok(())
    }

    /// The metric alarms whose names start with `prefix`.
    pub async fn describe_alarms(&self, prefix: &str) -> R<Vec<MetricAlarm>> {
        let pages: Vec<_> = self
            .client
            .describe_alarms()
            .alarm_name_prefix(prefix)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(self.caller.err("cloudwatch:DescribeAlarms", prefix))?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.metric_alarms.unwrap_or_default())
            .collect())
    }

    pub async fn delete_alarms(&self, names: &[String]) -> R<()> {
        let action = "cloudwatch:DeleteAlarms";
        if names.is_empty()
            || self
                .caller
                .planned(action, format!("AlarmNames={}", names.join(",")))
        {
            return Ok(());
        }
        self.client
            .delete_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(self.caller.err(action, &names.join(",")))?;
        Ok(())
    }

    /// The latest datapoint of each metric (name, statistic) in `namespace` with `dimensions`, between `start` and
    /// `end`, at `period` seconds. GetMetricData returns datapoints newest first by default (ScanBy
    /// TimestampDescending, https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html).
    pub async fn get_metric_data(
        &self,
        namespace: &str,
        dimensions: &[(String, String)],
        metrics: &[(&str, Statistic)],
        (start, end): (SystemTime, SystemTime),
        period: i32,
    ) -> R<Vec<Latest>> {
        let dims: Vec<Dimension> = dimensions
            .iter()
            .map(|(n, v)| Dimension::builder().name(n).value(v).build())
            .collect();
        let queries: Vec<MetricDataQuery> = metrics
            .iter()
            .enumerate()
            .map(|(i, (name, stat))| {
                MetricDataQuery::builder()
                    .id(format!("m{i}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace(namespace)
                                    .metric_name(*name)
                                    .set_dimensions(Some(dims.clone()))
                                    .build(),
                            )
                            .period(period)
                            .stat(stat.as_str())
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let pages: Vec<_> = self
            .client
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(start.into())
            .end_time(end.into())
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(self.caller.err("cloudwatch:GetMetricData", namespace))?;
        let mut latest: Vec<Latest> = metrics.iter().map(|(n, _)| (n.to_string(), None)).collect();
        for r in pages.iter().flat_map(|p| p.metric_data_results()) {
            let Some(i) = r
                .id()
                .and_then(|id| id.strip_prefix('m'))
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|i| *i < latest.len())
            else {
                continue;
            };
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                let newer = latest[i].1.is_none_or(|(seen, _)| t.secs() > seen);
                if newer {
                    latest[i].1 = Some((t.secs(), *v));
                }
            }
        }
        Ok(latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(actions: &[&str]) -> AlarmSpec {
        AlarmSpec {
            name: "vpclink-l-east-tunnel-down".into(),
            description: "d".into(),
            namespace: "vpclink".into(),
            metric: "TunnelUp".into(),
            dimensions: vec![("Link".into(), "l".into()), ("Side".into(), "east".into())],
            statistic: Statistic::Minimum,
            period: 60,
            evaluation_periods: 2,
            datapoints_to_alarm: 2,
            threshold: 1.0,
            comparison: ComparisonOperator::LessThanThreshold,
            treat_missing_data: "breaching".into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// An alarm as DescribeAlarms would list the one `s` puts (dimensions in another order).
    fn listed(s: &AlarmSpec) -> MetricAlarm {
        MetricAlarm::builder()
            .alarm_name(&s.name)
            .namespace(&s.namespace)
            .metric_name(&s.metric)
            .set_dimensions(Some(
                s.dimensions
                    .iter()
                    .rev()
                    .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                    .collect(),
            ))
            .statistic(s.statistic.clone())
            .period(s.period)
            .evaluation_periods(s.evaluation_periods)
            .datapoints_to_alarm(s.datapoints_to_alarm)
            .threshold(s.threshold)
            .comparison_operator(s.comparison.clone())
            .treat_missing_data(&s.treat_missing_data)
            .set_alarm_actions(Some(s.actions.clone()))
            .set_ok_actions(Some(s.actions.clone()))
            .build()
    }

    #[test]
    fn an_alarm_matches_only_when_every_setting_and_the_topic_are_the_specs() {
        let s = spec(&["arn:aws:sns:eu-west-1:123456789012:ops"]);
        assert!(s.matches(&listed(&s)));
        let no_topic = spec(&[]);
        assert!(!s.matches(&listed(&no_topic)), "the topic changed");
        assert!(!no_topic.matches(&listed(&s)), "the topic was removed");
        let mut other = s.clone();
        other.treat_missing_data = "missing".into();
        assert!(!s.matches(&listed(&other)));
        let mut other = s.clone();
        other.evaluation_periods = 3;
        assert!(!s.matches(&listed(&other)));
        let mut other = s.clone();
        other.dimensions[1].1 = "west".into();
        assert!(!s.matches(&listed(&other)));
        let mut other = s.clone();
        other.statistic = Statistic::Average;
        assert!(!s.matches(&listed(&other)));
    }
}
