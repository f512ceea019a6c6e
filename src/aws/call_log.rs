//! `VPCLINK_CALL_LOG=PATH`: every AWS SDK call (EC2, SSM, STS) appends one JSON line to PATH when it finishes:
//! `{"side","step","service","operation","start_ms","end_ms","ok"}`, times in milliseconds since the Unix epoch, one
//! operation per line (its retries included). `step` names the step of the code that made the call (see [`step`]):
//! the calls of a side run concurrently, so their order cannot tell which step made them. `scripts/bench` reads it.
//! Unset: no interceptor, nothing changes.

use crate::side::Side;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ENV: &str = "VPCLINK_CALL_LOG";

/// One finished AWS call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    pub side: Side,
    /// The step that made the call; "" outside any step.
    pub step: &'static str,
    pub service: String,
    pub operation: String,
    pub start_ms: f64,
    pub end_ms: f64,
    pub ok: bool,
}

impl CallRecord {
    /// The record as one line of JSON, newline included (written with one `write_all`).
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("a call record serializes");
        s.push('\n');
        s
    }
}

fn now_ms() -> f64 {
    // Microsecond resolution is plenty; rounding keeps the lines short.
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros();
    t as f64 / 1000.0
}

/// The log file, opened once per process (append mode), shared by every client of both sides.
fn sink() -> Option<Arc<Mutex<File>>> {
    static SINK: OnceLock<Option<Arc<Mutex<File>>>> = OnceLock::new();
    SINK.get_or_init(|| {
        let path = std::env::var_os(ENV).filter(|p| !p.is_empty())?;
        match OpenOptions::new().create(true).append(true).open(&path) {
            Ok(f) => Some(Arc::new(Mutex::new(f))),
            Err(e) => {
                tracing::warn!(
                    "{ENV}={}: {e}; AWS calls are not logged",
                    path.to_string_lossy()
                );
                None
            }
        }
    })
    .clone()
}

/// The interceptor for one side's clients, or None when `VPCLINK_CALL_LOG` is unset.
pub fn interceptor(side: Side) -> Option<SharedInterceptor> {
    sink().map(|sink| SharedInterceptor::new(CallLog { side, sink }))
}

#[derive(Debug)]
struct CallLog {
    side: Side,
    sink: Arc<Mutex<File>>,
}

tokio::task_local! {
    static STEP: &'static str;
}

/// Run `f` with its AWS calls logged as made by step `name` (the names of scripts/bench.d/aws_dag.py's DAG).
pub async fn step<F: std::future::Future>(name: &'static str, f: F) -> F::Output {
    STEP.scope(name, f).await
}

/// When the operation started and in which step, kept in the call's own config bag between the two hooks.
#[derive(Debug, Clone, Copy)]
struct Started(f64, &'static str);

impl Storable for Started {
    type Storer = StoreReplace<Self>;
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "vpclink::call_log"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let step = STEP.try_with(|s| *s).unwrap_or("");
        cfg.interceptor_state().store_put(Started(now_ms(), step));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let end_ms = now_ms();
        let (service, operation) = cfg
            .load::<Metadata>()
            .map(|m| (m.service().to_string(), m.name().to_string()))
            .unwrap_or_default();
        let started = cfg.load::<Started>().copied();
        let record = CallRecord {
            side: self.side,
            step: started.map_or("", |s| s.1),
            service,
            operation,
            start_ms: started.map_or(end_ms, |s| s.0),
            end_ms,
            ok: matches!(context.output_or_error(), Some(Ok(_))),
        };
        // A log that cannot be written must not fail the call it describes.
        if let Ok(mut f) = self.sink.lock() {
            let _ = f.write_all(record.line().as_bytes());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line_with_the_agreed_fields() {
        let r = CallRecord {
            side: Side::West,
            step: "tunnel_run",
            service: "ec2".into(),
            operation: "RunInstances".into(),
            start_ms: 1_764_090_000_123.25,
            end_ms: 1_764_090_000_150.5,
            ok: false,
        };
        let line = r.line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"side": "west", "step": "tunnel_run", "service": "ec2", "operation": "RunInstances",
                "start_ms": 1_764_090_000_123.25, "end_ms": 1_764_090_000_150.5, "ok": false})
        );
    }

    #[test]
    fn a_step_label_reaches_nested_futures_and_ends_with_its_scope() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seen = rt.block_on(async {
            let inner = step("inner", async { STEP.try_with(|s| *s).ok() });
            let (a, b) = tokio::join!(
                step("outer", async { (STEP.try_with(|s| *s).ok(), inner.await) }),
                async { STEP.try_with(|s| *s).ok() }
            );
            (a, b, STEP.try_with(|s| *s).ok())
        });
        assert_eq!(seen, ((Some("outer"), Some("inner")), None, None));
    }

    #[test]
    fn the_clock_is_epoch_milliseconds() {
        let (a, b) = (now_ms(), now_ms());
        assert!(a > 1.6e12 && b >= a);
    }
}
