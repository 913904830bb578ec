//! The rates reader on arbitrary bytes, for the agreement currencies the
//! examples use. Never a panic; rejected rows are each rendered.
#![no_main]

use costshare_core::costs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for currency in ["USD", "JPY"] {
        match costs::parse_rates(data, currency) {
            Ok(rates) => {
                // the table round-trips through its rows
                let rows = rates.rows();
                assert_eq!(rows.len(), rates.len());
                let again = costs::Rates::from_rows(rows).expect("rows of a table repeat no (currency, date)");
                assert_eq!(again.rows(), rates.rows());
            }
            Err(errors) => {
                for e in &errors {
                    let _ = e.located("rates.csv");
                }
            }
        }
    }
});
