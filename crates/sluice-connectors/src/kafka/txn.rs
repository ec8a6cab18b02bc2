//! Finishing a transaction that a crashed run pre-committed, by its transactional id.
//!
//! The exactly-once sink keeps a checkpoint's records in an open Kafka transaction until the
//! checkpoint is complete, then commits it. A crash between the two leaves a transaction that the
//! checkpoint counts as written but Kafka holds open; a new producer with the same id would abort
//! it (librdkafka cannot resume a transaction, unlike Flink's reflection on the Java client). So
//! recovery asks the transaction coordinator directly: `DescribeTransactions` gives the state,
//! producer id and epoch; an `Ongoing` transaction is committed with `EndTxn`. Messages are encoded
//! with the `kafka-protocol` crate over a plain TCP connection.

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, RequestHeader, ResponseHeader, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use sluice_common::SluiceError;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response accepted (a corrupt or foreign length must not allocate gigabytes).
const MAX_RESPONSE: i32 = 16 << 20;
const FIND_COORDINATOR_VERSION: i16 = 3;
const DESCRIBE_VERSION: i16 = 0;
/// v3: the last version before transactions v2 (KIP-890), which librdkafka does not use.
const END_TXN_VERSION: i16 = 3;

/// What recovery found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The transaction was open; it is committed now.
    Committed,
    /// It had been committed before the crash (or nothing was pending).
    AlreadyCommitted,
}

struct Conn {
    stream: TcpStream,
    correlation: i32,
}

fn err(what: &str, e: impl std::fmt::Display) -> SluiceError {
    SluiceError::external(format!("recovering a Kafka transaction: {what}: {e}"))
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn, SluiceError> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| err(&format!("connecting to {addr}"), "timed out"))?
            .map_err(|e| err(&format!("connecting to {addr}"), e))?;
        Ok(Conn { stream, correlation: 0 })
    }

    async fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, req: &Req) -> Result<Resp, SluiceError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("sluice-txn-recovery")));
        let mut body = BytesMut::new();
        header.encode(&mut body, Req::header_version(version)).map_err(|e| err("encoding", e))?;
        req.encode(&mut body, version).map_err(|e| err("encoding", e))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let io = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            // These responses are small; a bigger frame is not a Kafka broker talking.
            if !(0..=MAX_RESPONSE).contains(&len) {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("response of {len} bytes")));
            }
            let len = len as usize;
            let mut buf = vec![0u8; len];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        };
        let buf = tokio::time::timeout(TIMEOUT, io)
            .await
            .map_err(|_| err("waiting for the broker", "timed out"))?
            .map_err(|e| err("talking to the broker", e))?;
        let mut buf = bytes::Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut buf, Resp::header_version(version)).map_err(|e| err("decoding", e))?;
        if rh.correlation_id != self.correlation {
            return Err(err("decoding", "response for another request"));
        }
        let resp = Resp::decode(&mut buf, version).map_err(|e| err("decoding", e))?;
        let _ = buf.remaining();
        Ok(resp)
    }
}

/// Commits transaction `transactional_id` if it is still open; `bootstrap` is the table's
/// `properties.bootstrap.servers`.
pub async fn commit_pending(bootstrap: &str, transactional_id: &str) -> Result<Outcome, SluiceError> {
    let mut last = None;
    for addr in bootstrap.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match commit_via(addr, transactional_id).await {
            Ok(o) => return Ok(o),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| err("bootstrap servers", "none given")))
}

async fn commit_via(bootstrap: &str, tid: &str) -> Result<Outcome, SluiceError> {
    let mut conn = Conn::open(bootstrap).await?;
    // The coordinator of this transactional id (retried while it is being elected).
    let mut coordinator = None;
    for _ in 0..50 {
        let req = FindCoordinatorRequest::default().with_key(StrBytes::from_string(tid.to_string())).with_key_type(1);
        let resp: FindCoordinatorResponse = conn.call(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &req).await?;
        if resp.error_code == 0 {
            coordinator = Some(format!("{}:{}", resp.host.as_str(), resp.port));
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let coordinator =
        coordinator.ok_or_else(|| err("finding the transaction coordinator", format!("no coordinator for '{tid}'")))?;
    let mut conn = if coordinator == bootstrap { conn } else { Conn::open(&coordinator).await? };
    for _ in 0..100 {
        let req = DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(tid.to_string()))]);
        let resp: DescribeTransactionsResponse =
            conn.call(ApiKey::DescribeTransactions, DESCRIBE_VERSION, &req).await?;
        let state = resp.transaction_states.into_iter().next().ok_or_else(|| err("describing", "empty response"))?;
        // 105: TRANSACTIONAL_ID_NOT_FOUND (the id never wrote anything).
        if state.error_code == 105 {
            return Ok(Outcome::AlreadyCommitted);
        }
        if state.error_code != 0 {
            // 51/14/15: the coordinator is loading or moving; ask again.
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        match state.transaction_state.as_str() {
            "Ongoing" => {
                let req = EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(StrBytes::from_string(tid.to_string())))
                    .with_producer_id(state.producer_id)
                    .with_producer_epoch(state.producer_epoch)
                    .with_committed(true);
                let resp: EndTxnResponse = conn.call(ApiKey::EndTxn, END_TXN_VERSION, &req).await?;
                match resp.error_code {
                    0 => return Ok(Outcome::Committed),
                    // CONCURRENT_TRANSACTIONS: a marker is being written; look again.
                    51 => tokio::time::sleep(Duration::from_millis(200)).await,
                    code => return Err(err("committing", format!("EndTxn failed with error code {code} for '{tid}'"))),
                }
            }
            "PrepareCommit" => tokio::time::sleep(Duration::from_millis(100)).await,
            "CompleteCommit" | "Empty" => return Ok(Outcome::AlreadyCommitted),
            "PrepareAbort" | "CompleteAbort" | "PrepareEpochFence" | "Dead" => {
                return Err(SluiceError::external(format!(
                    "Kafka transaction '{tid}' of the restored checkpoint was aborted by the broker ({}); \
                     its records are lost. Usually 'transaction.timeout.ms' ran out while the pipeline was down \
                     (sluice sets 15 minutes; the broker caps it with transaction.max.timeout.ms). \
                     Restart with --from-scratch or from an earlier savepoint.",
                    state.transaction_state.as_str()
                )))
            }
            other => return Err(err("describing", format!("unknown transaction state '{other}'"))),
        }
    }
    Err(err("committing", format!("transaction '{tid}' did not settle")))
}
