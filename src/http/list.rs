//! Lists as RabbitMQ's management API serves them: `?page=&page_size=` (then an object
//! with counts around the page), `name=` (a case-insensitive substring, or with
//! `use_regex=true` a case-insensitive regular expression; only with `page`), `sort=`
//! (a dotted key path, e.g. `message_stats.publish_details.rate`), `sort_reverse=`, and
//! `columns=` (comma-separated dotted paths kept in each item).
//!
//! Handlers build their items in their natural order (vhost, then name) as JSON
//! values and hand them to `ListQuery::respond`; the filtering, sorting, paging and
//! column cut happen here, once, for every list endpoint. Works on owned values, never
//! under a broker lock.

use super::error::ApiError;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

/// The most items a page may hold (RabbitMQ's limit).
pub const MAX_PAGE_SIZE: u64 = 500;
/// A page's size when `page` is given without `page_size`.
pub const DEFAULT_PAGE_SIZE: u64 = 100;

/// The query parameters every list endpoint takes; unknown ones are ignored.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub page_size: Option<String>,
    pub name: Option<String>,
    pub use_regex: Option<String>,
    pub sort: Option<String>,
    pub sort_reverse: Option<String>,
    pub columns: Option<String>,
}

fn is_true(flag: &Option<String>) -> bool {
    flag.as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl ListQuery {
    /// The whole answer for `items`: an array, or with `page` the paging object.
    pub fn respond(&self, items: Vec<Value>) -> Result<Value, ApiError> {
        let mut items = items;
        if let Some(path) = self.sort_path() {
            items.sort_by(|a, b| compare(lookup(a, &path), lookup(b, &path)));
        }
        if is_true(&self.sort_reverse) {
            items.reverse();
        }
        if self.page.is_none() {
            return Ok(Value::Array(self.cut_all(items)));
        }
        let total = items.len();
        let items = match self.name_filter()? {
            Some(re) => items
                .into_iter()
                .filter(|item| {
                    item.get("name")
                        .and_then(Value::as_str)
                        .is_some_and(|n| re.is_match(n))
                })
                .collect(),
            None => items,
        };
        let window = self.window(items.len())?;
        let page = items
            .into_iter()
            .skip(window.start)
            .take(window.size)
            .collect();
        Ok(self.paged(page, window, total as u64))
    }

    /// As `respond`, for rows that are cheap to name and to sort on some keys but dear
    /// to turn into JSON (a queue's JSON reads its figures, statistics and policy): with
    /// `page`, only the rows of the page shown are turned into JSON, so a page of a list
    /// of 10,000 queues costs a page. A sort key the rows cannot give cheaply falls back
    /// to building every row's JSON, as `respond` does.
    pub fn respond_rows<R: Row>(&self, rows: Vec<R>) -> Result<Value, ApiError> {
        let path = self.sort_path();
        let cheap = match (&path, rows.first()) {
            (Some(path), Some(row)) => row.sort_key(path).is_some(),
            _ => true,
        };
        if self.page.is_none() || !cheap {
            return self.respond(rows.iter().map(Row::json).collect());
        }
        let total = rows.len();
        let rows: Vec<R> = match self.name_filter()? {
            Some(re) => rows.into_iter().filter(|r| re.is_match(r.name())).collect(),
            None => rows,
        };
        let mut keyed: Vec<(Option<Value>, R)> = rows
            .into_iter()
            .map(|r| (path.as_ref().and_then(|p| r.sort_key(p)), r))
            .collect();
        if path.is_some() {
            keyed.sort_by(|a, b| compare(a.0.as_ref(), b.0.as_ref()));
        }
        if is_true(&self.sort_reverse) {
            keyed.reverse();
        }
        let window = self.window(keyed.len())?;
        let page = keyed
            .iter()
            .skip(window.start)
            .take(window.size)
            .map(|(_, r)| r.json())
            .collect();
        Ok(self.paged(page, window, total as u64))
    }

    fn sort_path(&self) -> Option<Vec<&str>> {
        let key = self.sort.as_deref().filter(|k| !k.is_empty())?;
        Some(key.split('.').collect())
    }

    /// `name=` as a case-insensitive regular expression (the text escaped unless
    /// `use_regex=true`), when given.
    fn name_filter(&self) -> Result<Option<regex::Regex>, ApiError> {
        let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let pattern = if is_true(&self.use_regex) {
            name.to_owned()
        } else {
            regex::escape(name)
        };
        regex::RegexBuilder::new(&pattern)
            .case_insensitive(true)
            .build()
            .map(Some)
            .map_err(|_| ApiError::bad_request("Pagination parameters are invalid"))
    }

    /// The page asked for, checked as RabbitMQ checks it, over `filtered` items.
    fn window(&self, filtered: usize) -> Result<Window, ApiError> {
        let invalid = || ApiError::bad_request("Pagination parameters are invalid");
        let page_text = self.page.as_deref().unwrap_or("1");
        let page: u64 = page_text.trim().parse().map_err(|_| invalid())?;
        let page_size: Option<u64> = match &self.page_size {
            Some(size) => Some(size.trim().parse().map_err(|_| invalid())?),
            None => None,
        };
        if page == 0 || page_size.is_some_and(|s| s == 0 || s > MAX_PAGE_SIZE) {
            let size = page_size.map_or("undefined".to_owned(), |s| s.to_string());
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_pagination_parameters",
                format!("Invalid pagination parameters: page number {page}, page size {size}"),
            ));
        }
        let page_size = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
        let filtered = filtered as u64;
        let page_count = filtered.div_ceil(page_size);
        if page > 1 && page > page_count {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "page_out_of_range",
                format!("Page out of range, page: {page} page size: {page_size}, len: {filtered}"),
            ));
        }
        Ok(Window {
            page,
            page_count,
            filtered,
            start: ((page - 1) * page_size) as usize,
            size: page_size as usize,
        })
    }

    /// RabbitMQ's paging object around the items of one page.
    fn paged(&self, items: Vec<Value>, window: Window, total: u64) -> Value {
        json!({
            "filtered_count": window.filtered,
            "item_count": items.len(),
            "items": self.cut_all(items),
            "page": window.page,
            "page_count": window.page_count,
            "page_size": window.size,
            "total_count": total,
        })
    }

    fn cut_all(&self, items: Vec<Value>) -> Vec<Value> {
        match self.columns() {
            Some(columns) => items.iter().map(|item| cut(item, &columns)).collect(),
            None => items,
        }
    }

    /// `columns=` as key paths, when given.
    pub fn columns(&self) -> Option<Vec<Vec<String>>> {
        let text = self.columns.as_deref().filter(|c| !c.is_empty())?;
        Some(
            text.split(',')
                .map(|c| c.trim().split('.').map(str::to_owned).collect())
                .collect(),
        )
    }

    /// `columns=` applied to a single object (a GET of one item takes it too).
    pub fn cut_one(&self, item: Value) -> Value {
        match self.columns() {
            Some(columns) => cut(&item, &columns),
            None => item,
        }
    }
}

/// One page's place in a filtered list.
struct Window {
    page: u64,
    page_count: u64,
    filtered: u64,
    start: usize,
    size: usize,
}

/// A row of a list that `ListQuery::respond_rows` serves: named and sortable on some
/// keys without building its JSON.
pub trait Row {
    fn name(&self) -> &str;
    /// The value at a sort path when the row has it cheaply (the same value its JSON
    /// would hold there); None when only the JSON has it.
    fn sort_key(&self, path: &[&str]) -> Option<Value>;
    /// The row as the list shows it.
    fn json(&self) -> Value;
}

/// The value at a dotted path, if any.
fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

/// Sort order across JSON kinds: absent and null first, then booleans, numbers,
/// strings, and anything else last, as Erlang's term order puts them.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(v: Option<&Value>) -> u8 {
        match v {
            None | Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(_) => 4,
        }
    }
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(Ordering::Equal)
        }
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `item` with only the given paths kept: a path into an object keeps the object with
/// only that key inside (`arguments.x` keeps `"arguments": {}` when there is no `x`).
fn cut(item: &Value, columns: &[Vec<String>]) -> Value {
    let mut out = Map::new();
    for path in columns {
        keep(item, path, &mut out);
    }
    Value::Object(out)
}

fn keep(from: &Value, path: &[String], into: &mut Map<String, Value>) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(value) = from.get(first) else {
        return;
    };
    if rest.is_empty() || !value.is_object() {
        into.insert(first.clone(), value.clone());
        return;
    }
    let slot = into
        .entry(first.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(inner) = slot {
        keep(value, rest, inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| json!({"name": format!("q{i:02}"), "n": i % 3, "a": {"x": i}}))
            .collect()
    }

    fn query(text: &str) -> ListQuery {
        let mut q = ListQuery::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = Some(v.to_owned());
            match k {
                "page" => q.page = v,
                "page_size" => q.page_size = v,
                "name" => q.name = v,
                "use_regex" => q.use_regex = v,
                "sort" => q.sort = v,
                "sort_reverse" => q.sort_reverse = v,
                "columns" => q.columns = v,
                _ => {}
            }
        }
        q
    }

    #[test]
    fn pages_count_like_rabbitmq() {
        let page = query("page=2&page_size=4")
            .respond(names(10))
            .expect("page");
        assert_eq!(page["page_count"], 3);
        assert_eq!(page["item_count"], 4);
        assert_eq!(page["total_count"], 10);
        assert_eq!(page["items"][0]["name"], "q04");
        let last = query("page=3&page_size=4")
            .respond(names(10))
            .expect("page");
        assert_eq!(last["item_count"], 2);
        let empty = query("page=1").respond(vec![]).expect("empty first page");
        assert_eq!(empty["page_count"], 0);
    }

    #[test]
    fn bad_pages_are_refused_with_rabbitmqs_kinds() {
        let e = query("page=4&page_size=4").respond(names(10)).unwrap_err();
        assert_eq!(e.error, "page_out_of_range");
        assert_eq!(e.reason, "Page out of range, page: 4 page size: 4, len: 10");
        let e = query("page=1&page_size=501").respond(names(1)).unwrap_err();
        assert_eq!(e.error, "invalid_pagination_parameters");
        let e = query("page=0").respond(names(1)).unwrap_err();
        assert_eq!(
            e.reason,
            "Invalid pagination parameters: page number 0, page size undefined"
        );
        let e = query("page=x").respond(names(1)).unwrap_err();
        assert_eq!(
            (e.error.as_str(), e.status),
            ("bad_request", StatusCode::BAD_REQUEST)
        );
        let e = query("page=1&name=(&use_regex=true")
            .respond(names(1))
            .unwrap_err();
        assert_eq!(e.error, "bad_request");
    }

    #[test]
    fn names_filter_as_substring_or_regex_ignoring_case() {
        let page = query("page=1&name=Q0").respond(names(12)).expect("page");
        assert_eq!(
            (page["filtered_count"].clone(), page["total_count"].clone()),
            (json!(10), json!(12))
        );
        let page = query("page=1&name=q.1")
            .respond(names(12))
            .expect("literal dot");
        assert_eq!(page["filtered_count"], 0);
        let page = query(
            "page=1&name=%5Eq1&use_regex=true"
                .replace("%5E", "^")
                .as_str(),
        )
        .respond(names(12))
        .expect("regex");
        assert_eq!(page["filtered_count"], 2);
    }

    #[test]
    fn sorting_by_a_path_and_cutting_columns() {
        let all = query("sort=a.x&sort_reverse=true&columns=name,a.y")
            .respond(names(3))
            .expect("all");
        assert_eq!(
            all,
            json!([{"name": "q02", "a": {}}, {"name": "q01", "a": {}}, {"name": "q00", "a": {}}])
        );
        let by_n = query("sort=n&columns=n").respond(names(4)).expect("by n");
        assert_eq!(by_n, json!([{"n": 0}, {"n": 0}, {"n": 1}, {"n": 2}]));
    }

    /// A row that sorts cheaply by name and `n` only, as a queue row does by its counts.
    struct Lazy(Value);

    impl Row for Lazy {
        fn name(&self) -> &str {
            self.0["name"].as_str().unwrap_or_default()
        }
        fn sort_key(&self, path: &[&str]) -> Option<Value> {
            matches!(path, ["name"] | ["n"]).then(|| lookup(&self.0, path).cloned())?
        }
        fn json(&self) -> Value {
            self.0.clone()
        }
    }

    #[test]
    fn rows_built_lazily_answer_as_built_eagerly() {
        for text in [
            "",
            "page=1&page_size=3",
            "page=2&page_size=3&sort=n",
            "page=1&page_size=4&sort=n&sort_reverse=true&columns=name",
            "page=1&name=Q0",
            "page=1&name=q0[2-5]&use_regex=true&sort=n",
            "page=2&page_size=2&sort=a.x&sort_reverse=true",
            "sort=n",
        ] {
            let q = query(text);
            let rows = names(10).into_iter().map(Lazy).collect();
            assert_eq!(
                q.respond_rows(rows).ok(),
                q.respond(names(10)).ok(),
                "{text}"
            );
        }
        for bad in [
            "page=0",
            "page=9&page_size=3",
            "page=1&name=(&use_regex=true",
        ] {
            let q = query(bad);
            let rows = names(10).into_iter().map(Lazy).collect();
            assert!(q.respond_rows(rows).is_err(), "{bad}");
        }
    }
}
