//! Maps the SDK's errors to [`Error`], in this one place.

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::error::Error;

/// What was being done, for messages: the operation, the bucket and the object.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    /// `s3://bucket/prefix/key`, or the bucket for bucket-level calls.
    pub object: String,
    pub doing: &'static str,
}

impl Context<'_> {
    fn doing(&self) -> String {
        format!("{} {}", self.doing, self.object)
    }
}

/// Classifies an SDK error. Connection failures and timeouts are [`Error::Unreachable`]
/// (retryable), throttling and 5xx retryable, missing objects/buckets and denied credentials
/// permanent.
pub(crate) fn classify<E>(err: SdkError<E, HttpResponse>, ctx: &Context<'_>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = DisplayErrorContext(&err).to_string();
    let endpoint = ctx.endpoint.to_string();
    match &err {
        SdkError::DispatchFailure(d) if d.is_user() => {
            Error::invalid("S3 request", format!("while {}: {detail}", ctx.doing()))
        }
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            Error::Unreachable { endpoint, doing: ctx.doing(), detail }
        }
        SdkError::TimeoutError(_) => Error::Unreachable { endpoint, doing: ctx.doing(), detail },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::Transient { endpoint, doing: ctx.doing(), detail }
        }
        SdkError::ConstructionFailure(_) => {
            Error::invalid("S3 request", format!("while {}: {detail}", ctx.doing()))
        }
        _ => {
            let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
            let code = err.code().unwrap_or("").to_string();
            let message = match err.message() {
                Some(m) if !m.is_empty() => m.to_string(),
                // No S3 error document: keep what the SDK saw.
                _ => detail,
            };
            classify_service(ctx, status, &code, &message)
        }
    }
}

/// Classifies a service error by its S3 code and HTTP status.
pub(crate) fn classify_service(ctx: &Context<'_>, status: u16, code: &str, message: &str) -> Error {
    let endpoint = ctx.endpoint.to_string();
    let detail = if message.is_empty() {
        format!("{code} (HTTP {status})")
    } else {
        format!("{code}: {message} (HTTP {status})")
    };
    match (code, status) {
        ("NoSuchBucket", _) => Error::NoSuchBucket { bucket: ctx.bucket.to_string(), endpoint },
        ("NoSuchKey" | "NotFound" | "NoSuchUpload", _) | (_, 404) => {
            Error::NotFound { object: ctx.object.clone() }
        }
        (
            "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "AllAccessDisabled"
            | "InvalidSecurity",
            _,
        )
        | (_, 401 | 403) => Error::AccessDenied { target: ctx.object.clone(), endpoint, detail },
        (
            "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequests",
            _,
        )
        | (_, 429 | 503) => Error::Throttled { endpoint, doing: ctx.doing(), detail },
        ("InternalError" | "RequestTimeout" | "ServiceUnavailable", _) | (_, 500 | 502 | 504) => {
            Error::Transient { endpoint, doing: ctx.doing(), detail }
        }
        _ => Error::Service {
            endpoint,
            doing: ctx.doing(),
            code: if code.is_empty() { "Unknown".to_string() } else { code.to_string() },
            status,
            detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            endpoint: "http://127.0.0.1:1",
            bucket: "bkt",
            object: "s3://bkt/p/key".to_string(),
            doing: "get",
        }
    }

    #[test]
    fn service_errors_are_classified_by_code_then_status() {
        let cases = [
            ("NoSuchBucket", 404, "NO_SUCH_BUCKET", false),
            ("NoSuchKey", 404, "NOT_FOUND", false),
            ("", 404, "NOT_FOUND", false),
            ("InvalidAccessKeyId", 403, "ACCESS_DENIED", false),
            ("SignatureDoesNotMatch", 403, "ACCESS_DENIED", false),
            ("", 403, "ACCESS_DENIED", false),
            ("SlowDown", 503, "THROTTLED", true),
            ("", 429, "THROTTLED", true),
            ("InternalError", 500, "TRANSIENT", true),
            ("RequestTimeout", 400, "TRANSIENT", true),
            ("InvalidArgument", 400, "SERVICE", false),
        ];
        for (code, status, want, retryable) in cases {
            let e = classify_service(&ctx(), status, code, "msg");
            assert_eq!((e.code(), e.retryable()), (want, retryable), "{code} {status}: {e}");
            let text = e.to_string();
            assert!(text.contains("bkt") || text.contains("127.0.0.1:1"), "{code} {status}: {text}");
        }
    }
}
