//! `/openapi.json`: the API described for clients and for schemathesis.
//!
//! Written by hand beside the handlers in [`crate::api`] and
//! [`crate::whatif`]; the JSON schemas follow the renderers of
//! `costshare-app` (money as exact decimal strings). The CLI's
//! `tests/serve_api.rs` checks that every route of the router is described,
//! and `tests/schemathesis/run.sh` checks every answer against its schema.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub async fn handler() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        serde_json::to_string_pretty(&spec()).unwrap_or_default(),
    )
        .into_response()
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn string() -> Value {
    json!({"type": "string"})
}

fn nstring() -> Value {
    json!({"type": "string", "nullable": true})
}

fn int() -> Value {
    json!({"type": "integer"})
}

fn boolean() -> Value {
    json!({"type": "boolean"})
}

fn array(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

/// An exact decimal amount, e.g. `"1234.50"` or `"-3"`.
fn money() -> Value {
    r("Money")
}

/// `{party: money}`: amounts per party (only the non-zero ones).
fn per_party() -> Value {
    json!({"type": "object", "additionalProperties": money()})
}

/// An object with `props` (`required` listed), more properties allowed.
fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

/// A request body object: only `props` (the server refuses other fields).
fn closed(required: &[&str], props: Value) -> Value {
    let mut o = obj(required, props);
    o["additionalProperties"] = json!(false);
    o
}

/// A query parameter.
fn q(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description})
}

fn q_required(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": true, "schema": schema, "description": description})
}

fn fmt_param(default: &str) -> Value {
    q(
        "format",
        json!({"type": "string", "enum": ["json", "csv", "table"], "default": default}),
        "json, csv (byte for byte the command line's --format csv) or table (the command line's text)",
    )
}

fn as_of() -> Value {
    q(
        "as_of",
        json!({"type": "string", "format": "date"}),
        "YYYY-MM-DD: allocate as of this day (default: today)",
    )
}

/// `from`, `to`, `period`: the date filter of the command line.
fn filter() -> Vec<Value> {
    vec![
        q(
            "from",
            json!({"type": "string", "format": "date"}),
            "only lines dated on or after this day",
        ),
        q(
            "to",
            json!({"type": "string", "format": "date"}),
            "only lines dated on or before this day",
        ),
        q(
            "period",
            string(),
            "a fiscal year (FY2023) or month (2023-04); not with from/to",
        ),
    ]
}

fn currency() -> Vec<Value> {
    vec![
        q(
            "currency",
            json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
            "convert to this currency with the ledger's rates",
        ),
        q(
            "rate_policy",
            string(),
            "spot (default), fiscal-year-average or fixed:RATE; needs currency",
        ),
    ]
}

fn by(required: bool) -> Value {
    let s = json!({"type": "string", "pattern": "^(party|fiscal_year|category|site|month)(,(party|fiscal_year|category|site|month))*$"});
    let d = "dimensions, comma-separated: party, fiscal_year, category, site, month";
    if required {
        q_required("by", s, d)
    } else {
        q("by", s, d)
    }
}

fn err_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": r("Error")}}})
}

/// The error answers of an endpoint: `codes` among 400 401 403 404 409
/// 413 415 422 503 (503 always: the database did not answer).
fn errors(codes: &[u16]) -> Map<String, Value> {
    let mut m = Map::new();
    let mut all: Vec<u16> = codes.to_vec();
    all.push(503);
    for c in all {
        let d = match c {
            400 => "bad request: a parameter or the body is malformed",
            401 => "no token, or the token is unknown or revoked",
            403 => "the token's role or party scope does not allow this",
            404 => "not found (for a party-scoped token: also a line its party does not share in)",
            405 => "method not allowed",
            409 => "refused: the ledger's state does not allow it (closed period, duplicate name, verify failed)",
            413 => "the body is larger than the server's limit (--max-body-mib)",
            415 => "unsupported content type",
            422 => "the input was read but is wrong: per-row errors (`rows`) or agreement diagnostics (`diagnostics`)",
            500 => "internal error",
            _ => "the database did not answer; try again",
        };
        m.insert(c.to_string(), err_response(d));
    }
    m
}

/// 200 with a JSON body of `schema`, plus `errs`.
fn ok_json(schema: Value, errs: &[u16]) -> Value {
    let mut m = errors(errs);
    m.insert(
        "200".into(),
        json!({"description": "OK", "content": {"application/json": {"schema": schema}}}),
    );
    Value::Object(m)
}

/// 200 in json, csv or table as `format` says.
fn ok_formats(schema: Value, errs: &[u16]) -> Value {
    let mut m = errors(errs);
    m.insert(
        "200".into(),
        json!({"description": "OK, in the format asked for", "content": {
            "application/json": {"schema": schema},
            "text/csv": {"schema": string()},
            "text/plain": {"schema": string()},
        }}),
    );
    Value::Object(m)
}

/// An operation with the bearer token.
fn op(summary: &str, role: &str, params: Vec<Value>, responses: Value) -> Value {
    json!({
        "summary": summary,
        "description": format!("Needs a token with at least the {role} role."),
        "security": [{"bearer": []}],
        "parameters": params,
        "responses": responses,
    })
}

fn with_body(mut o: Value, body: Value) -> Value {
    o["requestBody"] = body;
    o
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// `against` of a compare: a TOML text with a name, or a built-in example.
fn compare_against() -> Value {
    // one object rather than a oneOf: the server says which fields go together
    json!({"type": "object", "properties": {
        "name": {"type": "string", "description": "with toml: the agreement's file name"},
        "toml": {"type": "string", "description": "the agreement's TOML text"},
        "example": {"type": "string", "description": "or a built-in example's file name (see /api/v1/examples)"},
    }})
}

fn schemas() -> Value {
    let row_dims = json!({
        "party": string(), "fiscal_year": string(), "category": string(),
        "site": string(), "month": string(),
    });
    let with_dims = |extra: Value| -> Value {
        let mut p = row_dims.as_object().cloned().unwrap_or_default();
        if let Value::Object(e) = extra {
            p.extend(e);
        }
        json!({"type": "object", "properties": p})
    };
    let provenance = json!({
        "agreement": r("AgreementRef"),
        "agreement_versions": array(r("AgreementRef")),
        "journal": r("Journal"),
    });
    let prov = |required: &[&str], extra: Value| -> Value {
        let mut p = provenance.as_object().cloned().unwrap_or_default();
        if let Value::Object(e) = extra {
            p.extend(e);
        }
        json!({"type": "object", "required": required, "properties": p})
    };
    let rate = obj(
        &["rate", "basis"],
        json!({
            "rate": string(),
            "basis": {"type": "string", "enum": ["same", "spot", "fiscal-year-average", "fixed"]},
            "rate_date": string(), "fiscal_year": string(), "rates_averaged": int(),
            "lines": int(), "first_line_date": string(), "last_line_date": string(),
        }),
    );
    let conversion = obj(
        &["from", "to", "policy", "rates"],
        json!({"from": string(), "to": string(), "policy": string(), "rates": array(rate.clone())}),
    );
    let against_of = json!({"type": "object", "additionalProperties":
        obj(&["amount", "delta"], json!({"amount": money(), "delta": money()}))});
    let ceiling_row = obj(
        &[
            "category",
            "layer",
            "period",
            "unit",
            "cap",
            "used",
            "remaining",
            "lines",
            "open",
        ],
        json!({
            "category": string(), "layer": string(), "period": string(), "unit": string(),
            "cap": string(), "used": string(), "remaining": string(),
            "percent_used": nstring(), "bound_on": nstring(), "forecast_bound_on": nstring(),
            "lines": int(), "open": boolean(),
        }),
    );
    let cap_trace = json!({"type": "object", "nullable": true, "required": ["kind", "policy", "cap"], "properties": {
        "kind": {"type": "string", "enum": ["money", "units"]},
        "policy": {"type": "string", "enum": ["running", "pro_rata"]},
        "cap": string(), "left_before": string(), "left_after": string(), "quantity": string(),
        "units_taken": string(), "group_total": string(), "group_quantity": string(),
        "group_lines": int(), "fraction": string(), "leftover_unit": boolean(), "provisional": boolean(),
    }});
    let layer = obj(
        &[
            "layer",
            "rule",
            "remaining_before",
            "offered",
            "take",
            "split",
            "remaining_after",
            "took_part",
        ],
        json!({
            "layer": int(), "rule": string(), "period": nstring(), "remaining_before": money(),
            "portion": nstring(), "offered": money(), "cap": cap_trace, "take": money(),
            "split": per_party(), "rounding_units": array(string()), "remaining_after": money(),
            "took_part": boolean(),
            "carried": obj(&["used", "from"], json!({"used": string(), "from": array(obj(&["version", "used"], json!({"version": int(), "used": string()})))})),
        }),
    );
    let mut parts = vec![json!({
        "Money": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "an exact decimal amount in the currency's minor unit precision"},
        "Error": obj(&["error"], json!({"error": obj(&["code", "message"], json!({
            "code": string(),
            "message": string(),
            // a CSV upload's rows by `line` (header = 1); a JSON upload's by `row` (1-based, in the array)
            "rows": array(obj(&["message"], json!({
                "file": string(), "line": int(), "row": int(), "column": string(), "id": nstring(), "message": string(),
            }))),
            "diagnostics": array(obj(&["severity", "message"], json!({"severity": string(), "message": string(), "span": array(int())}))),
        }))})),
        "AgreementRef": obj(&["id", "sha256"], json!({"id": string(), "sha256": string()})),
        "Journal": obj(&["entries", "head"], json!({"entries": int(), "head": string()})),
        "Health": obj(&["status"], json!({"status": {"type": "string", "enum": ["ok"]}})),
        "Whoami": obj(&["name", "role", "party", "journal"], json!({
            "name": string(), "role": r("Role"), "party": nstring(), "journal": r("Journal"),
        })),
        "Role": {"type": "string", "enum": ["viewer", "recorder", "admin"]},
        "Info": obj(&["agreement", "versions", "journal", "as_of", "lines", "ledger_kind"], json!({
            "agreement": obj(&["id", "title", "currency", "start", "end", "fiscal_years", "parties", "categories"], json!({
                "id": string(), "title": string(), "currency": string(), "start": string(), "end": string(),
                "fiscal_years": array(string()),
                "parties": array(obj(&["id", "name"], json!({"id": string(), "name": string()}))),
                "categories": array(obj(&["id", "name", "layers"], json!({
                    "id": string(), "name": string(), "unit": nstring(),
                    "layers": array(obj(&["id", "capped", "portion", "period"], json!({
                        "id": string(), "capped": boolean(), "portion": boolean(), "period": string(),
                    }))),
                }))),
            })),
            "versions": array(obj(&["version", "effective", "id", "sha256"], json!({
                "version": int(), "effective": string(), "id": string(), "sha256": string(),
            }))),
            "journal": r("Journal"), "as_of": string(), "lines": int(),
            "ledger_kind": {"type": "string", "enum": ["sqlite", "postgresql"]},
        })),
    })];
    parts.push(json!({
        "Report": prov(&["currency", "as_of", "rows", "total", "provisional_lines"], json!({
            "currency": string(), "as_of": string(), "by": array(string()),
            "pivot": string(), "columns": array(string()),
            "rows": array(with_dims(json!({
                "amount": money(), "provisional": boolean(), "amounts": per_party(), "total": money(),
                "rates": array(rate.clone()),
            }))),
            "totals": per_party(),
            "total": money(), "provisional_lines": int(),
            "from": nstring(), "to": nstring(),
            "conversion": conversion.clone(),
        })),
        "Allocation": prov(&["currency", "as_of", "lines", "totals"], json!({
            "currency": string(), "as_of": string(),
            "lines": array(obj(&["id", "date", "category", "site", "amount", "allocation", "provisional"], json!({
                "id": string(), "date": string(), "category": string(), "site": string(),
                "amount": money(), "allocation": per_party(), "provisional": boolean(),
            }))),
            "totals": per_party(),
        })),
        "Explanation": prov(&["id", "date", "fiscal_year", "category", "amount", "layers", "result", "provisional"], json!({
            "id": string(), "date": string(), "fiscal_year": string(), "category": string(),
            "site": string(), "description": string(), "row": int(), "amount": money(),
            "source": obj(&["currency"], json!({"amount": nstring(), "currency": string(),
                "rate": {"type": "object", "nullable": true, "properties": {"date": string(), "rate": string()}}})),
            "quantity": nstring(),
            "layers": array(layer),
            "result": per_party(), "provisional": boolean(),
            "journal_entry": {"type": "integer", "nullable": true}, "as_of": string(),
        })),
        "CeilingRow": ceiling_row.clone(),
        "Ceilings": prov(&["currency", "as_of", "ceilings"], json!({
            "currency": string(), "rate_policy": nstring(), "as_of": string(),
            "ceilings": array(r("CeilingRow")),
        })),
    }));
    parts.push(json!({
        "Settlement": prov(&["currency", "as_of", "rows", "total", "transfers", "payments"], json!({
            "currency": string(), "rate_policy": nstring(), "as_of": string(), "period": nstring(),
            "rows": array(obj(&["party", "obligation", "paid", "balance"], json!({
                "party": string(), "obligation": money(), "paid": money(), "balance": money(),
            }))),
            "total": obj(&["obligation", "paid", "balance"], json!({"obligation": money(), "paid": money(), "balance": money()})),
            "transfers": array(obj(&["from", "to", "amount"], json!({"from": string(), "to": string(), "amount": money()}))),
            "payments": int(),
        })),
        "History": obj(&["entries", "journal", "agreement"], json!({
            "entries": array(obj(&["seq", "at", "who", "kind", "summary", "source"], json!({
                "seq": int(), "at": string(), "who": string(), "kind": string(), "id": nstring(),
                "summary": string(), "source": string(),
            }))),
            "journal": r("Journal"), "agreement": r("AgreementRef"),
        })),
        "Verify": obj(&["ok"], json!({"ok": boolean(), "entries": int(), "head": string(), "deep": boolean(), "text": string(), "message": string()})),
    }));
    parts.push(json!({
        "Recorded": obj(&["dry_run", "file", "recorded", "already", "voided", "dropped", "journal"], json!({
            "dry_run": boolean(), "file": string(), "recorded": int(), "already": int(),
            "voided": int(), "dropped": int(), "journal": r("Journal"),
        })),
        "CostRow": {"type": "object", "additionalProperties": false, "properties": {
            "id": string(), "date": string(), "category": string(), "amount": string(), "currency": nstring(),
            "quantity": nstring(), "site": nstring(), "description": nstring(), "replaces": nstring(), "paid_by": nstring(),
        }},
        "PaymentRow": {"type": "object", "additionalProperties": false, "properties": {
            "id": string(), "date": string(), "from": string(), "to": string(), "amount": string(),
            "currency": nstring(), "description": nstring(),
        }},
        "Voided": obj(&["id", "reason", "journal"], json!({"id": string(), "reason": string(), "journal": r("Journal")})),
        "Paid": obj(&["file", "recorded", "already", "text", "journal"], json!({
            "file": string(), "recorded": int(), "already": int(), "text": string(), "journal": r("Journal"),
        })),
        "Amended": obj(&["version", "agreement", "effective", "journal"], json!({
            "version": int(), "agreement": r("AgreementRef"), "effective": string(), "journal": r("Journal"),
        })),
        "Statement": obj(&["period", "as_of", "journal_entry", "head_before", "forced", "rows", "journal", "agreement"], json!({
            "period": string(), "as_of": string(), "journal_entry": int(), "head_before": string(),
            "forced": boolean(), "forced_because": nstring(),
            "rows": array(obj(&["party", "category", "amount"], json!({"party": string(), "category": string(), "amount": money()}))),
            "journal": r("Journal"), "agreement": r("AgreementRef"),
        })),
    }));
    parts.push(json!({
        "Token": obj(&["name", "role", "party", "created_at", "revoked_at"], json!({
            "name": string(), "role": r("Role"), "party": nstring(), "created_at": string(), "revoked_at": nstring(),
        })),
        "Tokens": obj(&["tokens"], json!({"tokens": array(r("Token"))})),
        "TokenCreated": obj(&["name", "role", "party", "token"], json!({
            "name": string(), "role": r("Role"), "party": nstring(), "token": string(),
        })),
        "Revoked": obj(&["revoked"], json!({"revoked": string()})),
    }));
    parts.push(json!({
        "Compare": prov(&["against", "currency", "as_of", "rows", "totals"], json!({
            "against": array(obj(&["id", "sha256"], json!({"id": string(), "sha256": string(), "file": string()}))),
            "currency": string(), "as_of": string(), "by": array(string()),
            "rows": array(with_dims(json!({"amount": money(), "against": against_of.clone(), "rates": array(rate)}))),
            "totals": obj(&["amount", "against"], json!({"amount": money(), "against": against_of})),
            "conversion": conversion,
        })),
        "Example": obj(&["file", "id", "title"], json!({"file": string(), "id": string(), "title": string()})),
    }));
    parts.push(json!({
        "Forecast": prov(&["currency", "as_of", "until", "rows"], json!({
            "currency": string(), "as_of": string(), "until": string(), "by": array(string()),
            "projection": {"type": "object", "properties": {
                "basis": {"type": "string", "enum": ["run_rate", "run_rate_and_budget"]},
                "budget_lines": int(), "lines": int(), "beyond_term": array(string()),
            }},
            "rows": array(with_dims(json!({"actual": money(), "forecast": money(), "amount": money()}))),
            "totals": {"type": "object"},
        })),
        "WhatIfEdit": {"type": "object", "required": ["category", "layer", "field", "value"], "properties": {
            "category": string(),
            "layer": {"type": "integer", "minimum": 1},
            "field": {"type": "string", "enum": ["cap", "cap_units", "portion", "share"]},
            "party": string(), "fiscal_year": string(), "value": string(),
        }},
        "WhatIf": obj(&["agreement_toml", "elapsed_ms", "parties", "totals", "ceilings", "warnings"], json!({
            "agreement_toml": string(),
            "elapsed_ms": {"type": "number", "description": "the server's time for the what-if, in milliseconds"},
            "as_of": string(), "journal": r("Journal"), "currency": string(),
            "parties": array(string()),
            "totals": array(obj(&["party", "fiscal_year", "amount", "current", "delta"], json!({
                "party": nstring(), "fiscal_year": nstring(), "amount": money(), "current": money(), "delta": money(),
            }))),
            "ceilings": array(r("CeilingRow")),
            "warnings": array(string()),
        })),
    }));
    let mut all = Map::new();
    for p in parts {
        if let Value::Object(o) = p {
            all.extend(o);
        }
    }
    Value::Object(all)
}

/// The OpenAPI 3.0 document.
pub fn spec() -> Value {
    let mut doc = document();
    add_examples(&mut doc);
    doc
}

/// Examples on the demo ledger (`costshare demo --serve`): they show a
/// client a working request, and let schemathesis's examples phase reach
/// each endpoint's success path.
fn add_examples(doc: &mut Value) {
    let params: &[(&str, Value)] = &[
        ("by", json!("party,fiscal_year")),
        ("period", json!("FY2023")),
        ("currency", json!("USD")),
        ("until", json!("2027-03-31")),
        ("id", json!("L-2022-04-OKI")),
        ("against", json!(["us-japan-fourfold-proposal.toml"])),
        ("file", json!("household.toml")),
    ];
    let bodies: &[(&str, &str, &str, Value)] = &[
        (
            "/api/v1/costs",
            "post",
            "text/csv",
            json!(
                "id,date,category,amount,currency,quantity,site,description\nEX-1,2023-05-31,welfare,1000,,,Okinawa,an example\n"
            ),
        ),
        (
            "/api/v1/void",
            "post",
            "application/json",
            json!({"id": "W-2022-04-OKI", "reason": "entered twice"}),
        ),
        (
            "/api/v1/payments",
            "post",
            "text/csv",
            json!("id,date,from,to,amount\nPAY-1,2023-06-30,JP,US,1000\n"),
        ),
        ("/api/v1/close", "post", "application/json", json!({"period": "FY2022"})),
        (
            "/api/v1/tokens",
            "post",
            "application/json",
            json!({"role": "viewer", "party": "JP", "name": "example-jp-viewer"}),
        ),
        (
            "/api/v1/compare",
            "post",
            "application/json",
            json!({"against": [{"example": "us-japan-fourfold-proposal.toml"}], "by": "party"}),
        ),
        (
            "/api/v1/forecast",
            "post",
            "application/json",
            json!({"until": "2027-03-31", "by": "party"}),
        ),
        (
            "/api/v1/whatif",
            "post",
            "application/json",
            json!({"edits": [{"category": "utilities", "layer": 1, "field": "cap", "fiscal_year": "FY2024", "value": "16000000000"}]}),
        ),
    ];
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            if let Some(ps) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                for p in ps {
                    let name = p["name"].as_str().unwrap_or("").to_string();
                    if let Some((_, v)) = params.iter().find(|(n, _)| *n == name) {
                        p["example"] = v.clone();
                    }
                }
            }
            for (bp, bm, ct, v) in bodies {
                if path == bp && method == bm {
                    op["requestBody"]["content"][*ct]["example"] = v.clone();
                }
            }
        }
    }
}

fn document() -> Value {
    let fq = |extra: Vec<Value>| -> Vec<Value> {
        let mut v = extra;
        v.push(as_of());
        v.extend(filter());
        v
    };
    let read_errs: &[u16] = &[400, 401, 403, 422];
    let report_params = {
        let mut v = vec![
            by(true),
            fmt_param("json"),
            q(
                "pivot",
                json!({"type": "string", "enum": ["party"]}),
                "parties as columns",
            ),
        ];
        v = fq(v);
        v.extend(currency());
        v
    };
    let ceilings_params = {
        let mut v = fq(vec![
            fmt_param("json"),
            q(
                "chart",
                json!({"type": "string", "enum": ["svg"]}),
                "the ceilings chart as SVG",
            ),
        ]);
        v.extend(currency());
        v
    };
    let settle_params = {
        let mut v = fq(vec![
            fmt_param("json"),
            q(
                "transfers",
                json!({"type": "boolean"}),
                "table: the transfers that settle every balance",
            ),
        ]);
        v.extend(currency());
        v
    };
    let compare_params = |by_required: bool| {
        let mut v = fq(vec![
            by(by_required),
            fmt_param("json"),
            q(
                "chart",
                json!({"type": "string", "enum": ["svg"]}),
                "the comparison chart as SVG",
            ),
        ]);
        v.extend(currency());
        v
    };
    let forecast_params = |required: bool| {
        let until = json!({"type": "string", "format": "date"});
        let d = "project until this day";
        fq(vec![
            if required {
                q_required("until", until, d)
            } else {
                q("until", until, d)
            },
            by(required),
            fmt_param("json"),
        ])
    };
    let svg = |mut resp: Value| -> Value {
        resp["200"]["content"]["image/svg+xml"] = json!({"schema": string()});
        resp
    };
    let upload = |row: &str| -> Value {
        json!({"required": true, "content": {
            "text/csv": {"schema": string()},
            "application/json": {"schema": {"oneOf": [
                array(r(row)),
                obj(&["rows"], json!({"rows": array(r(row))})),
            ]}},
        }})
    };
    let export_ok = {
        let mut m = errors(read_errs);
        m.insert(
            "200".into(),
            json!({"description": "the export, as an attachment", "content": {
                "text/csv": {"schema": string()},
                "text/plain": {"schema": string()},
                "application/json": {"schema": r("Allocation")},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}},
            }}),
        );
        Value::Object(m)
    };
    let mut token_created = errors(&[400, 401, 403, 409, 413, 415]);
    token_created.insert(
        "201".into(),
        json!({"description": "created; the token is shown only here", "content": {"application/json": {"schema": r("TokenCreated")}}}),
    );
    let toml_ok = |errs: &[u16]| -> Value {
        let mut m = errors(errs);
        m.insert(
            "200".into(),
            json!({"description": "the agreement's TOML text", "content": {"application/toml": {"schema": string()}}}),
        );
        Value::Object(m)
    };
    let write_errs: &[u16] = &[400, 401, 403, 404, 409, 413, 415, 422];
    let compare_body = obj(
        &["against"],
        json!({
            "against": {"type": "array", "minItems": 1, "items": compare_against()},
            "by": {"type": "string", "description": "dimensions (or in the query)"},
        }),
    );

    let mut health = errors(&[]);
    health.insert(
        "200".into(),
        json!({"description": "OK", "content": {"application/json": {"schema": r("Health")}}}),
    );
    let health = Value::Object(health);
    let forecast_body = json!({"type": "object", "description": "until and by may come here or in the query", "properties": {
        "budget_csv": string(), "budget_name": string(), "until": string(), "by": string(),
    }});
    let whatif_body = json!({"type": "object", "description": "a whole agreement, or edits of the one in force", "properties": {
        "agreement_toml": string(), "edits": array(r("WhatIfEdit")),
    }});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "costshare",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Exact cost-sharing allocation over one ledger. Every read equals the command line's output for the same options; money is an exact decimal string. Errors are {\"error\": {\"code\", \"message\", ...}}.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a token from `costshare token create LEDGER --role viewer|recorder|admin [--party ID]`"}},
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "liveness: the database answers", "security": [], "responses": health}},
            "/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/": {"get": {"summary": "the dashboard", "security": [], "responses": {
                "200": {"description": "the dashboard's HTML", "content": {"text/html": {"schema": string()}}}}}},
            "/api/v1/whoami": {"get": op("the token's name, role and party, and the journal head", "viewer", vec![], ok_json(r("Whoami"), &[401]))},
            "/api/v1/info": {"get": op("the agreement in force, its versions and the journal", "viewer", vec![as_of()], ok_json(r("Info"), &[400, 401, 403]))},
            "/api/v1/agreement": {"get": op("the agreement in force, as its TOML text", "viewer", vec![], toml_ok(&[401]))},
            "/api/v1/report": {"get": op("totals by dimensions: `costshare report`", "viewer", report_params, ok_formats(r("Report"), read_errs))},
            "/api/v1/allocate": {"get": op("every line allocated: `costshare allocate`", "viewer", fq(vec![fmt_param("json")]), ok_formats(r("Allocation"), read_errs))},
            "/api/v1/explain": {"get": op("one line's allocation layer by layer: `costshare explain`", "viewer",
                vec![q_required("id", string(), "the line's id"),
                     q("format", json!({"type": "string", "enum": ["json", "table"], "default": "json"}), "json or table (csv is refused)"),
                     as_of()],
                ok_formats(r("Explanation"), &[400, 401, 403, 404, 422]))},
            "/api/v1/ceilings": {"get": op("ceiling use: `costshare ceilings`", "viewer", ceilings_params, svg(ok_formats(r("Ceilings"), read_errs)))},
            "/api/v1/settle": {"get": op("obligations, payments and balances: `costshare settle` (not for party-scoped tokens)", "viewer", settle_params, ok_formats(r("Settlement"), read_errs))},
            "/api/v1/history": {"get": op("the journal's story: `costshare history` (a party-scoped token must give id)", "viewer",
                vec![q("id", string(), "one line's history"), fmt_param("json")],
                ok_formats(r("History"), &[400, 401, 403, 404]))},
            "/api/v1/verify": {"get": op("recompute the hash chain and check the derived state's seals: `costshare verify` (the integrity check; `deep` is false: statements are re-derived by `costshare verify --deep` only)", "viewer",
                vec![q("expect_head", string(), "fail unless the head is this hash")],
                ok_json(r("Verify"), &[400, 401, 409]))},
            "/api/v1/export": {"get": op("the allocation for other tools: `costshare export`", "viewer",
                fq(vec![q("format", json!({"type": "string", "enum": ["csv", "json", "ledger", "beancount", "xlsx"], "default": "csv"}), "the export format")]),
                export_ok)},
            "/api/v1/costs": {"post": with_body(op("record a costs file: idempotent and atomic (`costshare record`)", "recorder",
                vec![q("dry_run", json!({"type": "boolean"}), "check and count, write nothing"),
                     q("file", json!({"type": "string", "minLength": 1, "maxLength": 256}), "the name the upload is recorded under")],
                ok_json(r("Recorded"), write_errs)), upload("CostRow"))},
            "/api/v1/void": {"post": with_body(op("void a recorded line (`costshare void`)", "recorder", vec![], ok_json(r("Voided"), write_errs)),
                json_body(closed(&["id", "reason"], json!({"id": string(), "reason": {"type": "string", "pattern": "\\S", "description": "why; not empty"}}))))},
            "/api/v1/payments": {"post": with_body(op("record transfers between parties (`costshare pay`)", "recorder",
                vec![q("file", json!({"type": "string", "minLength": 1, "maxLength": 256}), "the name the upload is recorded under")],
                ok_json(r("Paid"), write_errs)), upload("PaymentRow"))},
            "/api/v1/amend": {"post": with_body(op("put a new agreement version in force (`costshare amend`)", "admin", vec![], ok_json(r("Amended"), write_errs)),
                json_body(closed(&["agreement_toml", "effective"], json!({"agreement_toml": string(), "effective": string(), "file": string()}))))},
            "/api/v1/close": {"post": with_body(op("close a fiscal year and issue its statement (`costshare close`)", "admin", vec![], ok_json(r("Statement"), write_errs)),
                json_body(closed(&["period"], json!({"period": string(), "as_of": {"type": "string", "format": "date"}, "force": boolean()}))))},
            "/api/v1/tokens": {
                "get": op("every token (never the token itself)", "admin", vec![], ok_json(r("Tokens"), &[401, 403])),
                "post": with_body(op("create a token; it is shown once", "admin", vec![], Value::Object(token_created)),
                    json_body(closed(&["role"], json!({"role": r("Role"), "party": nstring(), "name": nstring()})))),
            },
            "/api/v1/tokens/{name}": {"delete": op("revoke a token", "admin",
                vec![json!({"name": "name", "in": "path", "required": true, "schema": string()})],
                ok_json(r("Revoked"), &[401, 403, 404, 409]))},
            "/api/v1/compare": {
                "get": op("the costs under built-in example agreements, side by side (`costshare compare`); not for party-scoped tokens", "viewer",
                    { let mut v = vec![json!({"name": "against", "in": "query", "required": true, "style": "form", "explode": true,
                        "schema": {"type": "array", "minItems": 1, "items": string()}, "description": "a built-in example's file name (see /api/v1/examples); repeat for more"})];
                      v.extend(compare_params(true)); v },
                    svg(ok_formats(r("Compare"), &[400, 401, 403, 404, 422]))),
                "post": with_body(op("the costs under other agreements, side by side (`costshare compare`); not for party-scoped tokens", "viewer",
                    compare_params(false), svg(ok_formats(r("Compare"), &[400, 401, 403, 404, 413, 415, 422]))), json_body(compare_body)),
            },
            "/api/v1/examples": {"get": op("the built-in example agreements", "viewer", vec![], ok_json(array(r("Example")), &[401]))},
            "/api/v1/examples/{file}": {"get": op("a built-in example agreement's TOML", "viewer",
                vec![json!({"name": "file", "in": "path", "required": true, "schema": string()})], toml_ok(&[401, 404]))},
            "/api/v1/forecast": {
                "get": op("actual and projected costs, allocated (`costshare forecast`); not for party-scoped tokens", "viewer",
                    forecast_params(true), ok_formats(r("Forecast"), read_errs)),
                "post": with_body(op("a forecast with a budget CSV (`costshare forecast --budget`); not for party-scoped tokens", "viewer",
                    forecast_params(false), ok_formats(r("Forecast"), &[400, 401, 403, 413, 415, 422])),
                    json_body(forecast_body)),
            },
            "/api/v1/whatif": {"post": with_body(op("every line re-allocated under an edited agreement; nothing is written; not for party-scoped tokens", "viewer",
                vec![as_of()], ok_json(r("WhatIf"), &[400, 401, 403, 404, 413, 415, 422])),
                json_body(whatif_body))},
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ref_resolves_and_every_operation_answers_errors() {
        let s = spec();
        let text = s.to_string();
        let schemas = s["components"]["schemas"].as_object().cloned().unwrap_or_default();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "unresolved $ref {name}");
        }
        let paths = s["paths"].as_object().cloned().unwrap_or_default();
        for (path, ops) in &paths {
            for (method, o) in ops.as_object().cloned().unwrap_or_default() {
                let resp = o["responses"].as_object().cloned().unwrap_or_default();
                assert!(
                    resp.contains_key("200") || resp.contains_key("201"),
                    "{method} {path}: no success answer"
                );
                if path.starts_with("/api/v1/") {
                    assert!(resp.contains_key("401"), "{method} {path}: no 401");
                    assert_eq!(o["security"], json!([{"bearer": []}]), "{method} {path}");
                } else {
                    assert_eq!(o["security"], json!([]), "{method} {path}");
                }
            }
        }
    }
}
