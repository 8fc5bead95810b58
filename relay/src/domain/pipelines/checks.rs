//! The real parsers an artifact can be held to (`check = "openapi" | "sqlite" | "json"` on an
//! artifact of a definition). A refusal names what is wrong in words a model can act on: the
//! stage sends it back and asks again, within its `validation_retries`.

use std::collections::BTreeSet;

use serde_json::Value;
use sqlx::{Connection, Executor};

use super::definition::Check;

/// Most statements of SQL one check applies.
const MAX_SQL_BYTES: usize = 1 << 20;
/// Most pages (4 KiB) the scratch database may grow to: 64 MiB.
const MAX_PAGES: u32 = 16 * 1024;
/// How long applying SQL to the scratch database may take.
const SQL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Checks `content` with `check`.
pub(super) async fn check(check: Check, path: &str, content: &str) -> Result<(), String> {
    let found = match check {
        Check::Json => serde_json::from_str::<Value>(content)
            .map(|_| ())
            .map_err(|e| format!("it is not JSON: {e}")),
        Check::Openapi => openapi(content),
        Check::Sqlite => sqlite(content).await,
    };
    found.map_err(|e| format!("`{path}` does not pass the {} check: {e}", name(check)))
}

fn name(check: Check) -> &'static str {
    match check {
        Check::Json => "JSON",
        Check::Openapi => "OpenAPI 3",
        Check::Sqlite => "SQLite",
    }
}

/// An OpenAPI 3.0 document: YAML (or JSON) that reads as OpenAPI, with at least one path, unique
/// operation ids, and every local `$ref` pointing at something that exists.
pub(super) fn openapi(content: &str) -> Result<(), String> {
    let value: Value = serde_norway::from_str(content).map_err(|e| format!("not YAML: {e}"))?;
    let version = value["openapi"].as_str().unwrap_or("");
    if !version.starts_with("3.0.") {
        return Err(format!(
            "`openapi` is {version:?}: write an OpenAPI 3.0.x document (such as `openapi: 3.0.3`)"
        ));
    }
    let doc: openapiv3::OpenAPI =
        serde_json::from_value(value.clone()).map_err(|e| format!("not OpenAPI 3.0: {e}"))?;
    if doc.paths.paths.is_empty() {
        return Err("it has no paths".into());
    }
    let mut ids = BTreeSet::new();
    for (path, _, op) in doc.operations() {
        if let Some(id) = &op.operation_id
            && !ids.insert(id.clone())
        {
            return Err(format!(
                "operationId `{id}` is used twice (again at {path})"
            ));
        }
    }
    let mut refs = Vec::new();
    collect_refs(&value, &mut refs, 0);
    for r in refs {
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(format!("`$ref: {r}` points outside the document"));
        };
        let pointer = pointer.replace("~1", "/").replace("~0", "~");
        if value.pointer(&pointer).is_none() {
            return Err(format!("`$ref: {r}` points at nothing"));
        }
    }
    Ok(())
}

fn collect_refs(v: &Value, out: &mut Vec<String>, depth: usize) {
    if depth > 64 || out.len() > 10_000 {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(x, out, depth + 1),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out, depth + 1)),
        _ => {}
    }
}

/// SQL that applies, as one script, to an empty in-memory SQLite database and leaves at least
/// one table.
pub(super) async fn sqlite(content: &str) -> Result<(), String> {
    if content.len() > MAX_SQL_BYTES {
        return Err(format!("it is over {MAX_SQL_BYTES} bytes"));
    }
    if content.trim().is_empty() {
        return Err("it is empty".into());
    }
    let work = async {
        // A script may not reach out of the scratch database to a file, nor change how SQLite
        // runs (PRAGMAs can set limits for the whole process).
        let words = content
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .map(str::to_ascii_lowercase);
        for word in words {
            if matches!(word.as_str(), "attach" | "detach" | "vacuum" | "pragma") {
                return Err(format!("{} is not allowed here", word.to_uppercase()));
            }
        }
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .in_memory(true)
            .pragma("max_page_count", MAX_PAGES.to_string());
        let mut db = sqlx::SqliteConnection::connect_with(&options)
            .await
            .map_err(|e| format!("no scratch database: {e}"))?;
        // Bounded in size (pages of 4 KiB, above) and in time: SQLite itself stops the script
        // when the deadline passes, so nothing keeps running on its thread.
        let deadline = std::time::Instant::now() + SQL_TIMEOUT;
        db.lock_handle()
            .await
            .map_err(|e| e.to_string())?
            .set_progress_handler(10_000, move || std::time::Instant::now() < deadline);
        db.execute(sqlx::raw_sql(content)).await.map_err(|e| {
            if std::time::Instant::now() >= deadline {
                format!("it took over {} s to apply", SQL_TIMEOUT.as_secs())
            } else {
                e.to_string()
            }
        })?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_one(&mut db)
        .await
        .map_err(|e| e.to_string())?;
        if tables == 0 {
            return Err("it creates no table".into());
        }
        Ok(())
    };
    tokio::time::timeout(SQL_TIMEOUT, work)
        .await
        .map_err(|_| format!("it took over {} s to apply", SQL_TIMEOUT.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "openapi: 3.0.3\ninfo: {title: T, version: 1.0.0}\npaths:\n  /health:\n    get:\n      operationId: health\n      responses:\n        '200':\n          description: ok\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Ok'}\ncomponents:\n  schemas:\n    Ok: {type: object}\n";

    #[test]
    fn openapi_documents_are_parsed_and_their_refs_resolved() {
        openapi(GOOD).unwrap();
        let bad_ref = GOOD.replace("schemas/Ok'", "schemas/Missing'");
        assert!(openapi(&bad_ref).unwrap_err().contains("points at nothing"));
        let v31 = GOOD.replace("3.0.3", "3.1.0");
        assert!(openapi(&v31).unwrap_err().contains("3.0.x"));
        assert!(
            openapi("openapi: 3.0.3\npaths: 7\n")
                .unwrap_err()
                .contains("not OpenAPI")
        );
        assert!(openapi(": : :\n- [").unwrap_err().contains("not YAML"));
        let twice = GOOD.replace(
            "components:",
            "  /x:\n    get:\n      operationId: health\n      responses: {'200': {description: ok}}\ncomponents:",
        );
        assert!(openapi(&twice).unwrap_err().contains("used twice"));
    }

    #[tokio::test]
    async fn sql_is_applied_to_a_scratch_database() {
        sqlite("CREATE TABLE t (id INTEGER PRIMARY KEY); CREATE INDEX i ON t (id);")
            .await
            .unwrap();
        let e = sqlite("CREATE TABLE t (id SERIAL PRIMARY KEY,);")
            .await
            .unwrap_err();
        assert!(e.contains("syntax error"), "{e}");
        assert!(sqlite("SELECT 1;").await.unwrap_err().contains("no table"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.db");
        for escape in [
            format!("ATTACH '{}' AS x; CREATE TABLE x.t (a);", file.display()),
            format!("CREATE TABLE t (a); VACUUM INTO '{}';", file.display()),
        ] {
            assert!(sqlite(&escape).await.unwrap_err().contains("not allowed"));
        }
        assert!(!file.exists());
        sqlite("CREATE TABLE attachments (id INTEGER);")
            .await
            .unwrap();
        assert!(
            sqlite("PRAGMA hard_heap_limit = 1; CREATE TABLE t (a);")
                .await
                .unwrap_err()
                .contains("not allowed")
        );
        // Endless or huge work is stopped by SQLite itself.
        let endless = sqlite(
            "CREATE TABLE t (a); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
             INSERT INTO t SELECT x FROM c;",
        )
        .await
        .unwrap_err();
        assert!(
            endless.contains("full") || endless.contains("took over"),
            "{endless}"
        );
        let huge = sqlite("CREATE TABLE t AS SELECT randomblob(200000000) AS b;")
            .await
            .unwrap_err();
        assert!(huge.contains("full") || huge.contains("too big"), "{huge}");
    }
}
