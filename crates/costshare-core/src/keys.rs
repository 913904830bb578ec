//! Shares computed from weights with floors and ceilings (SPEC section 5).
//!
//! s_i = clamp(λ·w_i, min_i, max_i) with the λ ≥ 0 that makes Σ s_i = 1.
//! g(λ) = Σ clamp(λ·w_i, min_i, max_i) is non-decreasing and piecewise linear
//! with breakpoints at min_i/w_i and max_i/w_i; we find the segment where it
//! reaches 1 and solve the linear piece exactly.

use crate::num::BigRational;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// A party's min is above its max.
    MinAboveMax { party: usize },
    /// Σ min > 100%.
    MinsTooHigh,
    /// Σ max over weighted parties (plus mins of unweighted ones) < 100%.
    MaxesTooLow,
}

fn clamp(v: BigRational, lo: &BigRational, hi: &BigRational) -> BigRational {
    if &v < lo {
        lo.clone()
    } else if &v > hi {
        hi.clone()
    } else {
        v
    }
}

fn total(l: &BigRational, w: &[BigRational], min: &[BigRational], max: &[BigRational]) -> BigRational {
    let mut s = BigRational::zero();
    for i in 0..w.len() {
        s = s.add(&clamp(l.mul(&w[i]), &min[i], &max[i]));
    }
    s
}

/// Solve the effective shares. All inputs are in party order and non-negative.
pub fn solve(w: &[BigRational], min: &[BigRational], max: &[BigRational]) -> Result<Vec<BigRational>, KeyError> {
    let one = BigRational::one();
    for i in 0..w.len() {
        if min[i] > max[i] {
            return Err(KeyError::MinAboveMax { party: i });
        }
    }
    let sum_min = min.iter().fold(BigRational::zero(), |a, b| a.add(b));
    if sum_min > one {
        return Err(KeyError::MinsTooHigh);
    }
    let mut reach = BigRational::zero();
    for i in 0..w.len() {
        reach = reach.add(if w[i].is_zero() { &min[i] } else { &max[i] });
    }
    if reach < one {
        return Err(KeyError::MaxesTooLow);
    }
    // Breakpoints of g.
    let mut bps: Vec<BigRational> = vec![BigRational::zero()];
    for i in 0..w.len() {
        if !w[i].is_zero() {
            bps.push(min[i].div(&w[i]));
            bps.push(max[i].div(&w[i]));
        }
    }
    bps.sort();
    bps.dedup();
    let mut prev: Option<BigRational> = None;
    for b in &bps {
        let g = total(b, w, min, max);
        if g >= one {
            let lambda = match &prev {
                // g(0) = Σ min ≥ 1: with Σ min ≤ 1 the mins are the shares.
                None => b.clone(),
                Some(p) => {
                    if g == one {
                        b.clone()
                    } else {
                        // In (p, b): classify each party at the midpoint and solve.
                        let mid = p.add(b).div(&BigRational::from_int(2));
                        let mut fixed = BigRational::zero();
                        let mut free_w = BigRational::zero();
                        for i in 0..w.len() {
                            let v = mid.mul(&w[i]);
                            if w[i].is_zero() || v <= min[i] {
                                fixed = fixed.add(&min[i]);
                            } else if v >= max[i] {
                                fixed = fixed.add(&max[i]);
                            } else {
                                free_w = free_w.add(&w[i]);
                            }
                        }
                        // free_w > 0: g rises across (p, b), so some party is free.
                        one.sub(&fixed).div(&free_w)
                    }
                }
            };
            let shares: Vec<BigRational> = (0..w.len())
                .map(|i| clamp(lambda.mul(&w[i]), &min[i], &max[i]))
                .collect();
            debug_assert_eq!(shares.iter().fold(BigRational::zero(), |a, b| a.add(b)), one);
            return Ok(shares);
        }
        prev = Some(b.clone());
    }
    // Past the last breakpoint every weighted party sits at its max and the
    // feasibility check guarantees that reaches 1, so the loop returned.
    Err(KeyError::MaxesTooLow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::BigInt;

    fn r(n: i64, d: i64) -> BigRational {
        BigRational::new(BigInt::from(n), BigInt::from(d))
    }

    #[test]
    fn spec_example() {
        let s = solve(
            &[r(400, 1), r(10, 1), r(100, 1)],
            &[r(0, 1), r(5, 100), r(0, 1)],
            &[r(20, 100), r(1, 1), r(1, 1)],
        )
        .unwrap();
        assert_eq!(s, vec![r(1, 5), r(8, 110), r(80, 110)]);
    }

    #[test]
    fn plain_weights_and_floors() {
        let s = solve(&[r(1, 1), r(3, 1)], &[r(0, 1), r(0, 1)], &[r(1, 1), r(1, 1)]).unwrap();
        assert_eq!(s, vec![r(1, 4), r(3, 4)]);
        // a floor lifts a small party and the others shrink in proportion
        let s = solve(&[r(1, 1), r(99, 1)], &[r(10, 100), r(0, 1)], &[r(1, 1), r(1, 1)]).unwrap();
        assert_eq!(s, vec![r(1, 10), r(9, 10)]);
        // zero weight keeps its min
        let s = solve(&[r(0, 1), r(1, 1)], &[r(1, 4), r(0, 1)], &[r(1, 1), r(1, 1)]).unwrap();
        assert_eq!(s, vec![r(1, 4), r(3, 4)]);
    }

    #[test]
    fn infeasible() {
        assert_eq!(
            solve(&[r(1, 1), r(1, 1)], &[r(0, 1), r(0, 1)], &[r(40, 100), r(50, 100)]),
            Err(KeyError::MaxesTooLow)
        );
        assert_eq!(
            solve(&[r(1, 1), r(1, 1)], &[r(60, 100), r(50, 100)], &[r(1, 1), r(1, 1)]),
            Err(KeyError::MinsTooHigh)
        );
        assert_eq!(
            solve(&[r(1, 1)], &[r(60, 100)], &[r(50, 100)]),
            Err(KeyError::MinAboveMax { party: 0 })
        );
    }
}
