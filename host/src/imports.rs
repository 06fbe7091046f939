//! Host side of the component's non-WASI imports: `wasi:keyvalue@0.2.0-draft2`
//! (store, atomics, batch) and `fermyon:spin/variables@2.0.0`, with Spin's semantics.
//!
//! This file only converts between WIT and [`crate::kv`]; the storage semantics live in
//! the backends. Resources: a `bucket` is a [`Bucket`] (the label it was opened with),
//! a `cas` is a [`Cas`] (label, key, and the value `current()` last saw).

use crate::kv::{self, Access, Dispatch, KvBackend, KvError, SwapOutcome};
use crate::state::RequestState;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker, Resource};

/// Bindings generated from `host/wit` (vendored WIT in versioned folders).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "push-devices:host/host",
        imports: { default: async | trappable },
        with: {
            "wasi:keyvalue/store.bucket": crate::imports::Bucket,
            "wasi:keyvalue/atomics.cas": crate::imports::Cas,
        },
    });
}

use bindings::fermyon::spin::variables;
use bindings::wasi::keyvalue::{atomics, batch, store};

/// Host state of a `wasi:keyvalue/store.bucket` resource.
#[derive(Debug)]
pub struct Bucket {
    label: String,
}

/// Host state of a `wasi:keyvalue/atomics.cas` resource.
#[derive(Debug)]
pub struct Cas {
    label: String,
    key: String,
    /// What `current()` last read; `None` (absent) if it was never called.
    seen: Option<Vec<u8>>,
}

/// What every request's key-value imports share: the backend and the allowed labels.
pub(crate) struct KvShared {
    pub(crate) backend: Arc<dyn KvBackend>,
    pub(crate) labels: Vec<String>,
}

/// Adds the key-value and variables imports to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    store::add_to_linker::<_, HasSelf<RequestState>>(linker, |s| s)?;
    atomics::add_to_linker::<_, HasSelf<RequestState>>(linker, |s| s)?;
    batch::add_to_linker::<_, HasSelf<RequestState>>(linker, |s| s)?;
    variables::add_to_linker::<_, HasSelf<RequestState>>(linker, |s| s)?;
    Ok(())
}

/// Runs one backend call the way the backend asks to be run (see [`Dispatch`]).
async fn call<T, F>(kv: &Arc<KvShared>, access: Access, f: F) -> wasmtime::Result<Result<T, KvError>>
where
    T: Send + 'static,
    F: Fn(&dyn KvBackend) -> Result<T, KvError> + Send + 'static,
{
    match kv.backend.dispatch(access) {
        Dispatch::Inline => Ok(f(&*kv.backend)),
        Dispatch::YieldThenInline => {
            tokio::task::yield_now().await;
            Ok(f(&*kv.backend))
        }
        Dispatch::InlineUnlessBusy => match kv::without_waiting(|| f(&*kv.backend)) {
            Err(KvError::WouldBlock) => blocking(kv, f).await,
            done => Ok(done),
        },
        Dispatch::Blocking => blocking(kv, f).await,
    }
}

async fn blocking<T, F>(kv: &Arc<KvShared>, f: F) -> wasmtime::Result<Result<T, KvError>>
where
    T: Send + 'static,
    F: FnOnce(&dyn KvBackend) -> Result<T, KvError> + Send + 'static,
{
    let kv = Arc::clone(kv);
    tokio::task::spawn_blocking(move || f(&*kv.backend))
        .await
        .map_err(|e| wasmtime::format_err!("key-value backend call panicked: {e}"))
}

fn to_wit(e: KvError) -> store::Error {
    match e {
        KvError::NoSuchStore => store::Error::NoSuchStore,
        KvError::AccessDenied => store::Error::AccessDenied,
        KvError::Other(msg) => store::Error::Other(msg),
        // `call` retries these where waiting is allowed; a backend that still says so is wrong.
        KvError::WouldBlock => store::Error::Other(KvError::WouldBlock.to_string()),
    }
}

impl RequestState {
    fn label(&self, bucket: &Resource<Bucket>) -> wasmtime::Result<String> {
        Ok(self.table.get(bucket)?.label.clone())
    }
}

impl store::Host for RequestState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<Bucket>, store::Error>> {
        if !self.kv.labels.contains(&identifier) {
            return Ok(Err(store::Error::NoSuchStore));
        }
        Ok(Ok(self.table.push(Bucket { label: identifier })?))
    }
}

impl store::HostBucket for RequestState {
    async fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Read, move |b| b.get(&label, &key))
            .await?
            .map_err(to_wit))
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Write, move |b| b.set(&label, &key, &value))
            .await?
            .map_err(to_wit))
    }

    async fn delete(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Write, move |b| b.delete(&label, &key))
            .await?
            .map_err(to_wit))
    }

    async fn exists(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Read, move |b| b.exists(&label, &key))
            .await?
            .map_err(to_wit))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        _cursor: Option<String>,
    ) -> wasmtime::Result<Result<store::KeyResponse, store::Error>> {
        // All keys in one page, like Spin: `cursor` is ignored and none is returned.
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Read, move |b| b.list_keys(&label))
            .await?
            .map(|keys| store::KeyResponse { keys, cursor: None })
            .map_err(to_wit))
    }

    async fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for RequestState {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Write, move |b| b.increment(&label, &key, delta))
            .await?
            .map_err(to_wit))
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let (label, key, seen) = {
            let c = self.table.get(&cas)?;
            (c.label.clone(), c.key.clone(), c.seen.clone())
        };
        let outcome = call(&self.kv, Access::Write, move |b| {
            b.swap(&label, &key, seen.as_deref(), &value)
        })
        .await?;
        match outcome {
            Ok(SwapOutcome::Swapped) => {
                self.table.delete(cas)?;
                Ok(Ok(()))
            }
            // The guest gets its `cas` back to retry with (`cas-failed(cas)`).
            Ok(SwapOutcome::Conflict) => Ok(Err(atomics::CasError::CasFailed(cas))),
            Err(e) => {
                self.table.delete(cas)?;
                Ok(Err(atomics::CasError::StoreError(to_wit(e))))
            }
        }
    }
}

impl atomics::HostCas for RequestState {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<Cas>, store::Error>> {
        // Like Spin: creating a `cas` reads nothing.
        let label = self.label(&bucket)?;
        Ok(Ok(self.table.push(Cas {
            label,
            key,
            seen: None,
        })?))
    }

    async fn current(
        &mut self,
        cas: Resource<Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, store::Error>> {
        let (label, key) = {
            let c = self.table.get(&cas)?;
            (c.label.clone(), c.key.clone())
        };
        match call(&self.kv, Access::Read, move |b| b.get(&label, &key)).await? {
            Ok(value) => {
                self.table.get_mut(&cas)?.seen = value.clone();
                Ok(Ok(value))
            }
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for RequestState {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Read, move |b| b.get_many(&label, &keys))
            .await?
            .map_err(to_wit))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Write, move |b| b.set_many(&label, &key_values))
            .await?
            .map_err(to_wit))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), store::Error>> {
        let label = self.label(&bucket)?;
        Ok(call(&self.kv, Access::Write, move |b| b.delete_many(&label, &keys))
            .await?
            .map_err(to_wit))
    }
}

/// Spin's rule for variable names: `^[a-z][a-z0-9_]*$`.
pub fn is_valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// `fermyon:spin/variables.get` against a variable map.
pub(crate) fn get_variable(
    vars: &BTreeMap<String, String>,
    name: &str,
) -> Result<String, variables::Error> {
    if !is_valid_variable_name(name) {
        return Err(variables::Error::InvalidName(format!(
            "invalid variable name {name:?}: must match ^[a-z][a-z0-9_]*$"
        )));
    }
    vars.get(name)
        .cloned()
        .ok_or_else(|| variables::Error::Undefined(format!("no variable for {name:?}")))
}

impl variables::Host for RequestState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(get_variable(&self.variables, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_follow_spin() {
        for ok in ["a", "auth_token_secret", "x9", "a_b_c", "a__b"] {
            assert!(is_valid_variable_name(ok), "{ok}");
        }
        for bad in ["", "A", "Auth", "9a", "_a", "a-b", "a.b", "aé", "a b"] {
            assert!(!is_valid_variable_name(bad), "{bad}");
        }
    }

    /// Refuses to wait: every call made with waiting off answers `WouldBlock`.
    struct Contended(crate::kv::MemoryStore, std::sync::Mutex<Vec<(bool, std::thread::ThreadId)>>);

    impl KvBackend for Contended {
        fn get(&self, store: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
            self.0.get(store, key)
        }
        fn set(&self, store: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
            self.1.lock().unwrap().push((kv::may_wait(), std::thread::current().id()));
            if !kv::may_wait() {
                return Err(KvError::WouldBlock);
            }
            self.0.set(store, key, value)
        }
        fn delete(&self, store: &str, key: &str) -> Result<(), KvError> {
            self.0.delete(store, key)
        }
        fn list_keys(&self, store: &str) -> Result<Vec<String>, KvError> {
            self.0.list_keys(store)
        }
        fn swap(&self, store: &str, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<SwapOutcome, KvError> {
            self.0.swap(store, key, expected, value)
        }
        fn increment(&self, store: &str, key: &str, delta: i64) -> Result<i64, KvError> {
            self.0.increment(store, key, delta)
        }
        fn dispatch(&self, _access: Access) -> Dispatch {
            Dispatch::InlineUnlessBusy
        }
    }

    #[test]
    fn a_busy_inline_try_is_made_again_on_the_blocking_pool() {
        let backend = Arc::new(Contended(crate::kv::MemoryStore::default(), Default::default()));
        let kv = Arc::new(KvShared { backend: backend.clone(), labels: vec!["default".into()] });
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let answer = runtime.block_on(call(&kv, Access::Write, |b| b.set("default", "k", b"v")));
        assert_eq!(answer.unwrap(), Ok(()));
        assert_eq!(backend.get("default", "k").unwrap().as_deref(), Some(&b"v"[..]));
        let tries = backend.1.lock().unwrap().clone();
        let here = std::thread::current().id();
        assert_eq!(tries.len(), 2, "{tries:?}");
        assert_eq!(tries[0], (false, here), "first inline, without waiting");
        assert!(tries[1].0 && tries[1].1 != here, "then on the pool, waiting allowed: {tries:?}");
        assert!(kv::may_wait());
    }

    #[test]
    fn get_variable_distinguishes_invalid_and_undefined() {
        let vars = BTreeMap::from([("sync_token_secret".to_string(), "s3cret".to_string())]);
        assert_eq!(get_variable(&vars, "sync_token_secret").unwrap(), "s3cret");
        assert!(matches!(
            get_variable(&vars, "missing"),
            Err(variables::Error::Undefined(_))
        ));
        assert!(matches!(
            get_variable(&vars, "Bad"),
            Err(variables::Error::InvalidName(_))
        ));
    }
}
