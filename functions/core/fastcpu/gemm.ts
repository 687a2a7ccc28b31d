/**
 * C[M,N] (+)= A[M,K] · B[K,N] on Float32Array views addressed by explicit strides, so one routine serves
 * NN, TN and NT products (im2col convolutions, their gradients, dense layers) without materialised transposes.
 *
 * Why it is written this way: V8 does not vectorise, so speed comes from register blocking. A 4x4 block of C
 * lives in 16 local doubles while K streams past; each step loads 8 values for 16 multiply-adds instead of
 * 2 loads and a store per multiply-add in the naive loop. K is walked in chunks so that the A and B panels one
 * block reads stay in L1/L2 when K is long (a weight gradient reduces over every pixel of the batch).
 */
export interface GemmOperand {
  readonly data: Float32Array;
  readonly offset: number;
  /** element stride between consecutive rows (i for A, k for B) */
  readonly rowStride: number;
  /** element stride between consecutive columns (k for A, j for B) */
  readonly colStride: number;
}

const K_CHUNK = 256;

/**
 * C = A·B (accumulate=false) or C += A·B (accumulate=true). C is dense row-major with row stride ldc.
 */
export function gemm(
  m: number,
  n: number,
  k: number,
  a: GemmOperand,
  b: GemmOperand,
  c: Float32Array,
  cOffset: number,
  ldc: number,
  accumulate: boolean,
): void {
  if (k === 0) {
    if (!accumulate) for (let i = 0; i < m; i++) c.fill(0, cOffset + i * ldc, cOffset + i * ldc + n);
    return;
  }
  for (let k0 = 0; k0 < k; k0 += K_CHUNK) {
    const kc = Math.min(K_CHUNK, k - k0);
    gemmPanel(m, n, kc, a.data, a.offset + k0 * a.colStride, a.rowStride, a.colStride,
      b.data, b.offset + k0 * b.rowStride, b.rowStride, b.colStride, c, cOffset, ldc, accumulate || k0 > 0 ? 1 : 0);
  }
}

/** C += A·B (add=1) or C = A·B (add=0) for one K chunk; all arguments monomorphic numbers/arrays so the JIT keeps one fast version. */
function gemmPanel(
  m: number, n: number, k: number,
  A: Float32Array, aOff: number, aRs: number, aCs: number,
  B: Float32Array, bOff: number, bRs: number, bCs: number,
  C: Float32Array, cOff: number, ldc: number, add: number,
): void {
  const m4 = m - (m % 4);
  const n4 = n - (n % 4);
  for (let i = 0; i < m4; i += 4) {
    const pa0 = aOff + i * aRs;
    for (let j = 0; j < n4; j += 4) {
      kernel4x4(k, A, pa0, aRs, aCs, B, bOff + j * bCs, bRs, bCs, C, cOff + i * ldc + j, ldc, add);
    }
    for (let j = n4; j < n; j++) {
      kernel4x1(k, A, pa0, aRs, aCs, B, bOff + j * bCs, bRs, C, cOff + i * ldc + j, ldc, add);
    }
  }
  for (let i = m4; i < m; i++) {
    const pa0 = aOff + i * aRs;
    for (let j = 0; j < n4; j += 4) {
      kernel1x4(k, A, pa0, aCs, B, bOff + j * bCs, bRs, bCs, C, cOff + i * ldc + j, add);
    }
    for (let j = n4; j < n; j++) {
      let s = 0;
      let pa = pa0;
      let pb = bOff + j * bCs;
      for (let p = 0; p < k; p++) {
        s += A[pa] * B[pb];
        pa += aCs;
        pb += bRs;
      }
      if (add === 1) C[cOff + i * ldc + j] += s;
      else C[cOff + i * ldc + j] = s;
    }
  }
}

function kernel4x4(
  k: number,
  A: Float32Array, pa0: number, aRs: number, aCs: number,
  B: Float32Array, pb0: number, bRs: number, bCs: number,
  C: Float32Array, pc: number, ldc: number, add: number,
): void {
  let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
  let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
  let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
  let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
  let pa = pa0;
  let pb = pb0;
  const aRs2 = aRs * 2, aRs3 = aRs * 3, bCs2 = bCs * 2, bCs3 = bCs * 3;
  for (let p = 0; p < k; p++) {
    const a0 = A[pa], a1 = A[pa + aRs], a2 = A[pa + aRs2], a3 = A[pa + aRs3];
    const b0 = B[pb], b1 = B[pb + bCs], b2 = B[pb + bCs2], b3 = B[pb + bCs3];
    c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
    c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
    c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
    c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
    pa += aCs;
    pb += bRs;
  }
  if (add === 1) {
    C[pc] += c00; C[pc + 1] += c01; C[pc + 2] += c02; C[pc + 3] += c03;
    pc += ldc;
    C[pc] += c10; C[pc + 1] += c11; C[pc + 2] += c12; C[pc + 3] += c13;
    pc += ldc;
    C[pc] += c20; C[pc + 1] += c21; C[pc + 2] += c22; C[pc + 3] += c23;
    pc += ldc;
    C[pc] += c30; C[pc + 1] += c31; C[pc + 2] += c32; C[pc + 3] += c33;
  } else {
    C[pc] = c00; C[pc + 1] = c01; C[pc + 2] = c02; C[pc + 3] = c03;
    pc += ldc;
    C[pc] = c10; C[pc + 1] = c11; C[pc + 2] = c12; C[pc + 3] = c13;
    pc += ldc;
    C[pc] = c20; C[pc + 1] = c21; C[pc + 2] = c22; C[pc + 3] = c23;
    pc += ldc;
    C[pc] = c30; C[pc + 1] = c31; C[pc + 2] = c32; C[pc + 3] = c33;
  }
}

function kernel4x1(
  k: number,
  A: Float32Array, pa0: number, aRs: number, aCs: number,
  B: Float32Array, pb0: number, bRs: number,
  C: Float32Array, pc: number, ldc: number, add: number,
): void {
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  let pa = pa0;
  let pb = pb0;
  const aRs2 = aRs * 2, aRs3 = aRs * 3;
  for (let p = 0; p < k; p++) {
    const b0 = B[pb];
    c0 += A[pa] * b0; c1 += A[pa + aRs] * b0; c2 += A[pa + aRs2] * b0; c3 += A[pa + aRs3] * b0;
    pa += aCs;
    pb += bRs;
  }
  if (add === 1) {
    C[pc] += c0; C[pc + ldc] += c1; C[pc + 2 * ldc] += c2; C[pc + 3 * ldc] += c3;
  } else {
    C[pc] = c0; C[pc + ldc] = c1; C[pc + 2 * ldc] = c2; C[pc + 3 * ldc] = c3;
  }
}

function kernel1x4(
  k: number,
  A: Float32Array, pa0: number, aCs: number,
  B: Float32Array, pb0: number, bRs: number, bCs: number,
  C: Float32Array, pc: number, add: number,
): void {
  let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
  let pa = pa0;
  let pb = pb0;
  const bCs2 = bCs * 2, bCs3 = bCs * 3;
  for (let p = 0; p < k; p++) {
    const a0 = A[pa];
    c0 += a0 * B[pb]; c1 += a0 * B[pb + bCs]; c2 += a0 * B[pb + bCs2]; c3 += a0 * B[pb + bCs3];
    pa += aCs;
    pb += bRs;
  }
  if (add === 1) {
    C[pc] += c0; C[pc + 1] += c1; C[pc + 2] += c2; C[pc + 3] += c3;
  } else {
    C[pc] = c0; C[pc + 1] = c1; C[pc + 2] = c2; C[pc + 3] = c3;
  }
}
