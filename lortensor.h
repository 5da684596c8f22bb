/* lortensor.h - v0.1.0 - parameter-efficient adapter kernels (LoRA, LoRA-XS, LoRTA, ...) for C - MIT

   One STB-style header: forward and backward kernels of low-rank and tensor adapters over
   cblas_sgemm, or over a built-in blocked GEMM when there is no BLAS. No allocation in any
   kernel, no global state, every error a status value. Full license at the end of this file.

QUICK START
===========
    // in exactly one .c file:
    #define LORTENSOR_IMPLEMENTATION
    #include "lortensor.h"

    cc app.c $(pkg-config --cflags --libs openblas) -lm     // over OpenBLAS
    cc -DLORT_NO_BLAS app.c -lm                              // built-in GEMM, no dependency

    lort_lora_desc d = {0};
    d.d_in = 4096; d.d_out = 4096; d.r = 16; d.alpha = 32.0f;   // s = alpha / r = 2
    size_t np, ws, cs;
    lort_lora_param_count(&d, &np);                 // r*(d_in + d_out) floats: A then B
    lort_lora_workspace_size(&d, n, &ws);           // scratch, dead after each call
    lort_lora_cache_size(&d, n, &cs);               // what forward saves for backward
    lort_rng rng; lort_rng_seed(&rng, 42);
    lort_lora_init(&d, A, B, &rng);                 // A ~ U(+-1/sqrt(d_in)), B = 0 (as PEFT)
    y = x W0^T (your base layer), then:
    lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws);          // y += s (x A^T) B^T
    lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, cache, cs, work, ws);   // += grads

TABLE OF CONTENTS
=================
    CONFIGURATION   macros (LORT_NO_<FAMILY> / LORT_ONLY_<FAMILY>: compile families out)
    CONVENTIONS     shapes, argument order, accumulation, aliasing
    MEMORY          params / frozen / cache / workspace
    ERRORS          status codes
    THREADING       reentrancy and BLAS threads
    EMBEDDED        trimming the build for microcontrollers
    FILES           safetensors, PEFT LoRA, set files (>>blocks, >>st, >>files)
    MATH            >>lora, >>loraxs, >>tt (TT-SVD, rounding), >>tt_rep, >>tt_adp, >>cp,
                    >>tucker, >>mpo (DoTA), >>nf4, >>rng (dropout), >>svd, >>adamw
    API             declarations, one banner per section (grep -n '^// >>.* api$'):
                    >>core, >>rng, >>gemm, >>svd, >>lora, >>loraxs, >>tt, >>tt_rep, >>tt_adp,
                    >>cp, >>tucker, >>nf4, >>mpo, >>adapter, >>set, >>serve, >>export,
                    >>gguf, >>blocks, >>st, >>files, >>adamw
    IMPLEMENTATION  one banner per section (grep -n '^// >>.* impl$'): >>config, >>core, >>rng,
                    >>gemm, >>svd, >>lora, >>loraxs, >>train (TT-SVD and rounding engine shared
                    by tt and mpo), >>tt, >>tt_rep, >>tt_adp, >>joint (shared by cp and
                    tucker), >>cp, >>tucker, >>nf4, >>mpo, >>adapter, >>set, >>serve, >>export,
                    >>gguf, >>blocks, >>json, >>st (safetensors), >>files (set files, PEFT),
                    >>adamw
    HISTORY, LICENSE at the end
    Each family carries the same tag in MATH, API and IMPLEMENTATION: grep -n '>>tt_adp'
    lists all three.

FILES
=====
    Adapters in and out, from caller buffers, with size queries and arenas (nothing allocates):
    lort_st_*      safetensors reader / writer (F32 views into the buffer; F16, BF16 converted)
    lort_peft_*    HuggingFace PEFT LoRA (adapter_model.safetensors + adapter_config.json) to
                   and from an adapter set; sites named by PEFT's module paths
    lort_set_save / lort_set_load   any adapter set of any family as one safetensors file
    lort_adapter_blocks             each family's flat layout: block names, offsets, shapes
    lort_file_read / lort_file_write   stdio helpers (LORT_NO_STDIO removes them)

CONFIGURATION
=============
    macro                       default            where   purpose
    LORTENSOR_IMPLEMENTATION    -                  one TU  emit the implementation
    LORT_STATIC                 off                global  every function becomes static
    LORT_API                    extern             global  prefix of every declaration
    LORT_NO_BLAS                off                impl    built-in blocked GEMM instead of cblas_sgemm
    LORT_CBLAS_HEADER           <cblas.h>          impl    header that declares cblas_sgemm
    LORT_SGEMM(tA,tB,M,N,K,alpha,A,lda,B,ldb,beta,C,ldc)   impl    row-major sgemm override (MKL,
                                cblas_sgemm                BLIS, a spy); tA, tB are 0 or 1
    LORT_ASSERT(x)              (void)0, or        impl    internal invariants only, never user
                                assert(x) under            input; costs nothing (no assert, no
                                LORT_DEBUG                 stdio) unless LORT_DEBUG or you define it
    LORT_MALLOC(sz,u)/LORT_FREE(p,u)  malloc/free  impl    default allocator; define both or neither
    LORT_DEBUG                  off                impl    O(size) checks: non-finite scans of
                                                           inputs; LORT_ASSERT becomes assert
    LORT_RESTRICT               restrict           global  C/C++ portable restrict (internal
                                                           helpers whose buffers never alias)
    LORT_NF4_TILE_FLOATS        1 << 20            impl    floats of W dequantised per NF4 GEMM tile
    LORT_NO_STDIO               off                global  no <stdio.h>: drops lort_file_read/_write
    LORT_GEMM_KC, LORT_GEMM_NC  128, 128           impl    built-in GEMM blocking: a KC x NC panel of B
    LORT_GEMM_MR, LORT_GEMM_NR  6, 16 (4, 4 with   impl    and an MR x KC strip of A on the stack,
                                no vector unit)
                                                           4 (KC NC + MR KC) bytes: 67 KiB by default;
                                                           KC 32 NC 32 MR 4 NR 8: 4.5 KiB for small stacks
                                                           (about 25% slower on AVX2). NC a multiple of NR;
                                                           MR x NR is the register tile (AVX-512: try MR 8,
                                                           NR 32)
    LORT_GEMM_PORTABLE          off                impl    built-in GEMM in plain C loops instead of the
                                                           GCC/Clang vector extension (for testing)
    LORT_GEMM_NO_FMA            off                impl    the built-in GEMM does not ask for fused
                                                           multiply-adds (Clang: add -ffp-contract=off)
  Build flags for the built-in GEMM (LORT_NO_BLAS): compile the implementation file with -O3 and
  the target's vector ISA (-march=native, or e.g. -mavx2 -mfma, -mcpu=... on ARM). At -O2 for
  baseline x86-64 (SSE2, no FMA) it runs at about a fifth of single-threaded OpenBLAS; at -O3
  -march=native on AVX2 at 50-150% of it, 90% geometric mean over the LoRA shapes and 512^3
  (bench/bench_gemm.c). Results are bit-identical for one build and blocking, and differ in the
  last bits between builds (FMA or not, vector width). `make run` builds -O3 -march=native.
    LORT_NO_<F>                 off                global  compile family F out (F = LORA, LORAXS,
                                                           TT, TT_REP, TT_ADP, CP, TUCKER, MPO, NF4,
                                                           SVD)
    LORT_ONLY_<F>               off                global  keep only the named families (any number
                                                           of LORT_ONLY_ macros); see EMBEDDED

CONVENTIONS
===========
  - float32, row-major, contiguous. A linear layer is PyTorch nn.Linear: W is (d_out, d_in),
    y = x W^T (+ b), x is (n, d_in) with one token per row. PEFT tensors load without transposes.
  - Shapes are written (rows, cols). n = rows of x (batch x tokens), d_in, d_out, r = rank.
  - Argument order everywhere: desc, outputs (including optional error outputs such as err,
    err_bound), inputs and weights, n, cache, cache_size, work, work_size. Rounding takes two
    descs (from, to) first. Every merge and delta takes work, work_size (lora's need none and
    accept NULL, 0; the family's workspace size always suffices).
  - Weights are one flat float vector per family (params, grads with the same layout), with
    one exception: lora and loraxs kernels take their named factors (A, B; R, A, B), because
    those are the tensors PEFT files hold; their flat layouts (A then B) are what lort_adapter
    uses, so the generic interface is one flat vector for every family.
  - Shape scalars follow the layer's data flow: n, d_in, d_out (lort_linear_*, lort_nf4_*). A
    weight is (d_out, d_in); a general matrix (SVD) is sized (m, n) = (rows, cols).
  - Adapters ADD: forward does y += dy_adapter; the base layer is yours.
  - Backward ACCUMULATES: dx, dA, dB, ... += (PyTorch .grad semantics). Zero them yourself
    (lort_zero). A NULL gradient pointer skips that gradient.
  - No output may alias an input unless a function says so.
  - Descs are plain structs; a zero field means "default" where a default is documented.
    lort_<family>_desc_resolve() returns the effective values.
  - Dimensions are int (cblas' int); element counts and byte sizes are size_t, computed with
    checked arithmetic; a buffer larger than PTRDIFF_MAX bytes is an overflow.

MEMORY
======
  Nothing in a kernel allocates. Per adapter there are up to four caller-owned buffers:
    params  the trainable values, one flat float vector with a documented layout (its gradient
            uses the same layout, so an optimizer steps one vector and saving is one write);
    frozen  frozen data: LoRA-XS's A and B (floats); DoTA's W_res (fp32 floats or an NF4 byte
            blob), sized in bytes by lort_mpo_residual_size;
    cache   what forward saves for backward, size from lort_<family>_cache_size(desc, n);
            forward may take cache = NULL (inference); backward then recomputes what it needs;
    work    scratch, dead after the call, size from lort_<family>_workspace_size(desc, n): one
            size serves forward, backward, merge and delta of that family at n rows.
  Sizes include 64 bytes of alignment slack, so any base pointer works; a buffer one byte short
  is refused with a status. lort_alloc/lort_free are optional helpers over an allocator struct.
  Rows: n >= 1 in every size query, forward and backward of every family (n <= 0 is
  LORT_ERR_INVALID_ARG); buffers sized for n rows serve any call with fewer.

ERRORS
======
  Every public function validates its arguments in O(1) (NULL pointers, sizes <= 0, products
  that overflow, shape mismatches, short workspaces) and returns a negative lort_status; it never
  aborts, exits or prints, and on error writes nothing to the caller's outputs.
  lort_status_string() gives a static message. Functions that read structured input (sets,
  files, configs) also take a trailing (char *msg, size_t msg_size) and write there what is
  wrong ("model.layers.0.q_proj.lora_A.weight: shape [8, 4096] but r = 16"); malformed bytes
  are LORT_ERR_FORMAT, valid but unsupported content (DoRA, a newer format)
  LORT_ERR_UNSUPPORTED. Under LORT_DEBUG, kernels also scan their inputs
  for NaN/Inf (LORT_ERR_NONFINITE): inputs and every parameter they read, in forward and
  backward alike. The SVD routines always scan (their cost dwarfs the scan), and also refuse a
  matrix whose Frobenius norm exceeds FLT_MAX (LORT_ERR_NONFINITE: its singular values might
  not be representable); below that they scale internally, so an OK never hides a NaN.
  Joint families (cp, tucker): a site with layer or matrix out of range is LORT_ERR_INVALID_ARG;
  d not divisible by heads, or kv_heads not dividing heads, LORT_ERR_SHAPE; GQA with heads on
  the input LORT_ERR_UNSUPPORTED; a GEMM dimension (d r1, r1 r2, the core size) above INT_MAX
  LORT_ERR_OVERFLOW.

THREADING
=========
  No mutable global or static state anywhere: every function is reentrant and can run
  concurrently on disjoint outputs. The library starts no threads; parallelism is BLAS's
  (OPENBLAS_NUM_THREADS, owned by the application). OpenBLAS's FAQ: an application that calls
  BLAS from several threads should run OpenBLAS single-threaded (built with USE_LOCKING since
  0.3.7). The built-in GEMM path is bit-deterministic. Forward kernels are row-separable (split n
  across your threads); parameter gradients of backward are sums over rows and need a reduction.

EMBEDDED
========
  Trim the build to what you call (stb style): define LORT_ONLY_<F> for each family you use, or
  LORT_NO_<F> for each you do not, before including the implementation. Dependencies come back
  by themselves: tt_rep and tt_adp need tt; tt (TT-SVD), loraxs (its init) and mpo need svd;
  mpo needs nf4. The generic lort_adapter_* dispatch then compiles only the families present
  and returns LORT_ERR_UNSUPPORTED for any other kind. Declarations of the dropped families'
  functions disappear too (their types stay: lort_adapter holds every desc).
  Then compile with -ffunction-sections -fdata-sections and link with -Wl,--gc-sections, so
  that only the functions you reach are linked. Float paths use float math only (the normal
  generator is a float polar method with its own log, AdamW's bias correction is computed
  without pow, the tt planner's FLOP model is float): on a single-precision FPU (Cortex-M4F)
  no soft-double routine is linked by lora, lora training with AdamW, or cp. Remaining double
  math, by design: the SVDs (Jacobi in double), TT-SVD and rounding (error sums), the mpo
  planner (its path choice sizes the workspace), tt init's sigma^(2/d) (pow).
  LORT_ASSERT is empty unless LORT_DEBUG is defined, so no assert/printf/stdio is linked.
  The built-in GEMM keeps 4 (KC NC + MR KC) bytes on the stack (67 KiB by default); shrink it
  for small stacks (e.g. -DLORT_GEMM_KC=32 -DLORT_GEMM_NC=32 -DLORT_GEMM_MR=4
  -DLORT_GEMM_NR=8: 4.5 KiB; see CONFIGURATION).
  `make size` builds LoRA forward, LoRA training and one cp site for Cortex-M4F (-Os,
  newlib-nano, --gc-sections) and prints their text size: about 3, 6 and 11 KiB, no __aeabi_d*.

MATH
====
  >>lora (Hu et al. 2021, as in HuggingFace PEFT). A: (r, d_in), B: (d_out, r).
      s  = alpha / r, or alpha / sqrt(r) when rslora is set (alpha = 0 means alpha = r)
      Xd = drop(x)                      inverted dropout with probability p (identity if p = 0)
      H  = Xd A^T         (n, r)        saved in the cache
      y += s H B^T        (n, d_out)
      backward: GH = s dy B (n, r); dB += s dy^T H; dA += GH^T Xd; dx += drop(GH A)
      merge: W += weight * s B A        delta: dW = s B A
      init: A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (kaiming_uniform(a=sqrt 5)), B = 0; or Gaussian
            A ~ N(0, 1/r^2) (PEFT "gaussian").  FLOPs forward 2 n r (d_in + d_out).
      params layout: A (r*d_in) then B (d_out*r).

  >>loraxs (Balazy et al. 2024). Frozen A = S_r V_r^T (r, d_in) and B = U_r (d_out, r) from the
  rank-r truncated SVD W0 = U S V^T; trainable R (r, r), init N(0, sigma^2), sigma = 1e-5.
      H1 = Xd A^T (n, r, cached); H2 = H1 R^T; y += s H2 B^T
      backward: dH2 = s dy B; dR += dH2^T H1; dx += drop(dH2 R A)
      merge: W += weight * s B R A      params: R (r*r); frozen layout: A (r*d_in) then B (d_out*r)
      The right singular vectors are signed so that the largest-magnitude entry of each row of
      V^T is positive (sklearn's svd_flip, which LoRA-XS's reference code uses).

  >>tt (LoRETTA's TT layer, Yang et al. 2024). A matrix W_tt (rows, cols) is the row-major
  reshape of a d-way tensor with modes n_1..n_d, prod n_k = rows*cols; the row/column split may
  fall inside a mode (only the flat offset p*cols + q matters). Cores G_k (t_{k-1}, n_k, t_k),
  t_0 = t_d = 1: W[i_1..i_d] = G_1[0,i_1,:] G_2[:,i_2,:] ... G_d[:,i_d,0].
      materialise: prefixes P_1 = G_1, P_k (N_<=k, t_k) = P_{k-1} G_k (one GEMM each), W = P_d
      layer: y (n, cols) += x (n, rows) W_tt + bias  (one GEMM; W_tt is in x out, the transpose
            of nn.Linear's weight)
      backward: dx += dy W_tt^T; dW = x^T dy; dbias += sum_rows dy; per core, with the prefix
            L = P_{k-1} (N_<k, t_{k-1}) and suffix R = S_{k+1} (t_k, N_>k), S_k = G_k S_{k+1}:
            dG_k[a,i,b] += sum_{u,v} L[u,a] dW[u,i,v] R[b,v], dW viewed as (N_<k, n_k, N_>k):
            two GEMMs, contracting first the side with the smaller temp (never per entry);
            from a core chosen by a FLOP model on, a left environment E_k = L^T dW
            (t_{k-1}, N_>=k) is swept instead, E_{k+1} = G_k^T E_k, dG_k += E_k R^T, which
            reads dW once when the leading modes are large (LoRETTA's mode lists).
      init: G_k ~ N(0, sigma^(2/d) / t_k), sigma^2 = 1/(rows+cols): Var(W_tt entry) = sigma^2.
      params: sum_k t_{k-1} n_k t_k. FLOPs forward 2 n rows cols + ~2 rows cols t (materialise).
      work: prefixes + suffixes (each <= d rows cols t floats), dW, one temp, two environment
            buffers (<= t rows cols / n_1 each); cache: prefixes.
      TT-SVD (Oseledets 2011; lort_tt_svd), left to right: C_1 = W; for k < d, C_k
            (t_{k-1} n_k, rest) ~= U S V^T (lort_svd_truncated, top t_k), G_k = U, C_{k+1} =
            U^T C_k; G_d = C_d. err^2 = sum_k ||C_k - U U^T C_k||^2 = ||W - TT||^2.
      TT rounding (lort_tt_round): right-to-left SVDs make cores 2..d right-orthonormal, then
            left-to-right truncated SVDs; err_bound = sqrt(sum of the discarded sigma^2), equal
            to the error in exact arithmetic. Both run on the train engine (>>train), shared
            with mpo.

  >>tt_rep (LoRETTA_rep): a LoRA whose factors are tt matrices W_A (d_in, r), W_B (r, d_out).
      s = alpha / r (alpha 0 = r); H = drop(x) W_A (cached); y += s H W_B; dW = s (W_A W_B)^T
      backward: dW_B = s H^T dy; dH = s dy W_B^T; dW_A = drop(x)^T dH; dx += drop(dH W_A^T);
            dW_A, dW_B pulled back to the cores as in tt. It runs lora's pipeline on
            A = W_A^T, B = W_B^T. init: both trains as tt (Var 1/(d_in+r) and 1/(r+d_out)):
            dW != 0 at init. params: cores of W_A, then cores of W_B.
      merge: W += weight s (W_A W_B)^T        delta: dW = s (W_A W_B)^T

  >>tt_adp (LoRETTA_adp): f(u) = s (act(drop(u) W_down + beta_d) W_up + beta_u), W_down
  (hidden, b) and W_up (b, hidden) tt matrices (by default the same modes), act ReLU | tanh |
  GELU (erf form, PyTorch's nn.GELU default) | GELU tanh form. Not linear: no dW; merge and
  delta return LORT_ERR_NOT_MERGEABLE.
      placement OUTPUT: y = y0 + f(y0) in place (the input aliases the output);
      placement INPUT:  x' = x + f(x) (y == x allowed), then the caller's layer runs on x'.
      forward: U = drop(u), Z = U W_down + beta_d, y += s (act(Z) W_up + beta_u); the cache
            keeps U, Z, W_down and W_up
      backward (G = dy): dbeta_u += s sum G; dW_up = s act(Z)^T G; dZ = s (G W_up^T) .* act'(Z);
            dbeta_d += sum dZ; dW_down = U^T dZ; dx += drop(dZ W_down^T) (dx may alias dy,
            giving the residual's gradient dy + J_f^T dy).
      init: cores as tt; beta_d ~ U(+-1/sqrt b), beta_u ~ U(+-1/sqrt hidden); f != 0 at init.
      params: cores of W_down, cores of W_up, beta_d (b), beta_u (hidden).

  >>cp (LoRTA, Hounie et al. 2024). ONE CP tensor over (d, d_h = d/H, heads H, layers L, matrix
  types M) holds every adapted matrix of a model; its factors are shared by all sites.
      params (one flat block for the whole model): A (d, r), B (r, d_h), C_H (H, r), C_L (L, r),
      C_M (M, r); count r (d + d_h + H + L + M) (LLaMA-2-7B, r = 8: 34,336; RoBERTa-base 860 r)
      site (l, m), head h: c_h = C_H[h] .* C_L[l] .* C_M[m] (r);  D = [A diag(c_0) B | ... |
      A diag(c_{H-1}) B] (d, d), head blocks side by side; s = alpha / r (or / sqrt(r))
      head_side OUT (default, lit-gpt): y += s Xd D;   W += s D^T   (heads split the output)
      head_side IN  (HF-PEFT, GLUE):    y += s Xd D^T; W += s D     (heads split the input)
      evaluation: Bk = [diag(c_0) B | ... ] (r, d) costs r d, then the site is a rank-r LoRA:
      OUT: U = Xd A (n, r, cached), y += s U Bk;  IN: T = Xd Bk^T (n, r, cached), y += s T A^T.
      Never the d x d D per forward (the reference code's cost 4 L d^2 r); FLOPs 4 n d r + r d.
      OUT with few rows (n (r + d_h) < r d_h) skips Bk: P_h = U .* c_h for all heads stacked
      as rows, y_h = s P_h B in one GEMM, so only A (d, r) is streamed. Both paths
      use the same workspace and cache (U), and give the same values up to float rounding.
      backward (OUT; IN is the transpose): dBk = s U^T dy, G = s dy Bk^T, dA += Xd^T G,
      dx += drop(G A^T); dc_h[k] = sum_j B[k, j] dBk[k, h d_h + j], dB[k] += sum_h c_h[k]
      dBk_h[k]; dC_H[h] += dc_h .* C_L[l] .* C_M[m], dC_L[l] += sum_h dc_h .* C_H[h] .* C_M[m],
      dC_M[m] likewise. Every backward ADDS into the one gradient block: call it for every site
      and the block holds the sum over sites. Not row-separable (a reduction over rows).
      GQA (our definition; LoRTA has none): a matrix type in kv_matrices (default K, V) has
      G = kv_heads heads, d_out = G d_h, and its head g uses the mean of C_H rows g q .. g q+q-1
      (q = H/G): the K/V update is the MHA update mean-pooled over each query group, exactly
      the MHA -> GQA checkpoint conversion (Ainslie et al. 2023); gradients flow to all H rows
      (each / q). Defined for head_side OUT only (IN + GQA: LORT_ERR_UNSUPPORTED).
      init (official scripts): B = 0 (every dW = 0), A ~ U(+-1/sqrt r), C_* ~ kaiming_uniform(a
      = sqrt(5) init_scale) on fan_in r, i.e. U(+-sqrt(6/r)) at init_scale 0 (every script).
      dropout acts on x; sites sharing dropout_seed share the mask (lit-gpt's one q,k,v draw).
      Matrix indices are the caller's (0..M-1); LORT_CP_Q/K/V/O = 0..3 name the defaults.
      Quirk not reproduced: lit-gpt's fused qkv output interleaves (q, k, v) per head group,
      but LoRTA adds [X dQ | X dK | X dV] block-wise, so its "dQ" lands on a permuted set of
      q/k/v channels; we add dQ to the Q matrix (the intended semantics).

  >>tucker: the same joint tensor with core C (r1, r2, rH, rL, rM) and A (d, r1), B (r2, d_h),
  C_H (H, rH), C_L (L, rL), C_M (M, rM); flat layout core, A, B, C_H, C_L, C_M.
      site (l, m): Z = C x_5 C_M[m] x_4 C_L[l] (r1 r2, rH) (two mat-vecs), K_h = Z Ch[h]
      (r1, r2), Bk = [K_0 B | ...] (r1, d) (nh GEMMs, r1 r2 d), then as cp at rank r1 (two
      skinny GEMMs); D block h = A K_h B. s = alpha / r1. With heads out and few rows
      (n (r2 + d_h) < r1 d_h, n < d_h) the per-head form instead: P_h = U K_h stacked, one
      GEMM with B (cost n H r1 r2 + a rank-r1 LoRA). Backward: dB += K_h^T dBk_h,
      dK_h = dBk_h B^T, dCh = dK Z, dZ = dK^T Ch, dC_L[l] += dZ Z1, dC_M[m] += (dZ C_L[l]) C,
      dC += (dZ C_L[l]) C_M[m]. CP = superdiagonal core (r1 = ... = rM = r, C[k,k,k,k,k] = 1).
      LoTR (Bershatsky et al. 2024, dW_l = (s/r) U G_l V^T): heads 1, M 1, rH = rM = 1,
      rL = L, A = V, B = U^T, core[:, :, 0, l, 0] = G_l^T, C_L = I, C_H = C_M = 1, alpha = s
      (LORT_TUCKER_INIT_LOTR: U, V ~ N(0, 1), G_l = 0).
      FacT-TK (Jie & Deng 2023, dY = s X U^T (C x_3 p_m) V^T over S stacked slices): heads 1,
      layers 1, M = S, rH = rL = 1, A = U^T, B = V^T, core[:, :, 0, 0, c] = C[:, :, c],
      C_M = P^T, alpha = s r1; params 2 d r + S r + r^3 + 2 (the unit C_H, C_L)
      (LORT_TUCKER_INIT_FACT_TK; its dropout on the r-dim hidden is not reproduced: p = 0).
      Default init: as cp, the core with ones at (k mod r1, .., k mod rM), k < the largest rank
      (the superdiagonal, i.e. a CP, when the ranks are equal; no core slice starts at zero).

  >>mpo (DoTA, Hu et al. 2024; MPO format of the RUC group). d_out = prod i_k, d_in = prod j_k,
  cores T_k (D_{k-1}, i_k, j_k, D_k), D_0 = D_N = 1; M = the TT of W reshaped to
  (i_1..i_N, j_1..j_N) and permuted to the interleaved (i_1, j_1, ..., i_N, j_N).
      layer: y += x (W_res + M)^T. W_res: none (plain adapter), fp32, or NF4 (QDoTA).
      dense path: suffixes R_k = T_k R_{k+1} (D_{k-1}, prod_{m>=k} i_m j_m), M = T_1 R_2, then one
        GEMM with W_res + M (fp32 W_res folded in). backward: dx += dy W_eff; dW = dy^T x,
        interleaved to F_1; per core dT_k += F_k R_{k+1}^T, F_{k+1} = T_k^T F_k (2 GEMMs/core).
      factored path: Z_{N+1} = x as (n prod_{m<N} j_m, j_N); step k = N..1 contracts (j_k, D_k):
        Z_k (i_k, R_k, D_{k-1}) = a_k-to-front of Z_{k+1} (R_k, j_k D_k) T_k[(p, a), (b, q)]^T,
        R_k = prod_{m>k} i_m * n * prod_{m<k} j_m; Z_1 = y^T. M is never formed. Cost of step k:
        2 n (prod_{m<k} j_m)(prod_{m>k} i_m) D_{k-1} i_k j_k D_k. Each step is one GEMM with
        T_k read as (D_{k-1} i_k, j_k D_k) and a transpose moving a_k to the front. backward per
        step (dZ_k transposed back to (R_k, D_{k-1} i_k)): dT_k += dZ_k^T Z_{k+1};
        dZ_{k+1} = dZ_k T_k; dZ_{N+1} is dx.
      path AUTO picks the smaller FLOP count of forward + backward at n rows (the dense one counts
        the materialisations, 3 GEMMs of n d_in d_out and the core sweep; the factored one 3x its
        steps, plus the fp32 W_res GEMMs it cannot fold).
      DoTA init: the TT-SVD of >>tt on W0 permuted to the interleaved order (modes i_k j_k,
        ranks D_k): err = ||W0 - M||. W_res = W0 - M(T) in fp32 (NF4: then quantised), so
        W_res + M = W0 at step 0. lort_mpo_round is TT rounding (>>tt) of the interleaved train.
      params: T_1..T_N flat (sum D_{k-1} i_k j_k D_k); frozen: W_res.

  >>nf4 (Dettmers et al. 2023, bitsandbytes): blocks of 64 consecutive entries with absmax a;
      code = #{midpoints m_c : w (1/a) > m_c} (the nearest level, ties down; w times the
      reciprocal of a, as bitsandbytes, not w / a: the two can differ in the last bit);
      w' = level[code] a;
      two codes per byte, element 2i high nibble. |w - w'| <= a * (largest gap) / 2 = 0.152 a.
      NF4 GEMM: tiles of ~LORT_NF4_TILE_FLOATS dequantised rows of W, one GEMM per tile.

  >>rng dropout: keep(row, col) is a pure function of (seed, row, col) (a counter-based
      hash), so backward regenerates the mask of forward instead of storing it. row is the row
      of x within the call (numbered from 0), col the column of the adapter's input (0..d_in-1;
      tt_adp: 0..hidden-1): the mask has the input's shape. A caller splitting n across calls
      should vary the seed. Dropout acts only on the adapter branch, and only when p > 0: set
      p = 0 for inference.

  >>svd lort_svd_truncated finds the top-r singular triplets of an (m, n) matrix by a randomized
      range finder (Halko, Martinsson, Tropp 2011): l = r + oversample probes (uniform on
      [-1, 1)), then q power iterations Q <- qr((W W^T - alpha I) Q), re-orthonormalized by
      CholeskyQR (GEMMs; one pass between power steps, two for the final basis; Householder QR
      when a block is too ill-conditioned for it), then the exact SVD of the small (l, n)
      projection. alpha is the dynamic shift of dashSVD (Feng et al., ACM TOMS 2024). Every
      step damps each unwanted direction relative to a wanted one by |s_u^2 - alpha| /
      (s_w^2 - alpha), and alpha ~ s_{l+1}^2 / 2 shrinks that ratio most. So while the smallest
      Ritz value t_l of a step (a lower bound of s_l) still grows by more than 5%, the tail has
      not converged and alpha moves halfway to t_l^2: on slowly decaying spectra this is 10-40x
      more accurate at equal cost. Once t_l stalls, alpha stays, so a basis that has reached a
      gap in the spectrum is never shifted past it. opts.no_shift turns the shift off.
      The exact SVD (lort_svd_jacobi, or opts.exact) reduces by Householder QR to a k x k
      triangle, k = min(m, n), and runs one-sided Jacobi on it in double precision.
      Results are deterministic given opts.seed; singular values are sorted descending.

  >>adamw (Loshchilov & Hutter; torch.optim.AdamW): p -= lr*wd*p; m = b1 m + (1-b1) g;
      v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
*/

#ifndef LORTENSOR_H
#define LORTENSOR_H

#include <stddef.h>
#include <stdint.h>

#define LORT_VERSION_MAJOR 0
#define LORT_VERSION_MINOR 1
#define LORT_VERSION_PATCH 0
#define LORT__STR2(x) #x
#define LORT__STR(x) LORT__STR2(x)
#define LORT_VERSION_STRING                                                                   \
    LORT__STR(LORT_VERSION_MAJOR) "." LORT__STR(LORT_VERSION_MINOR) "." LORT__STR(LORT_VERSION_PATCH)

#ifndef LORT_API
#ifdef LORT_STATIC
#define LORT_API static
#else
#define LORT_API extern
#endif
#endif

/* Families compiled in (declarations and implementation). LORT_ONLY_<F> (any number of
   them) keeps just those families; otherwise LORT_NO_<F> drops one. Dependencies come back
   in: tt_rep and tt_adp need tt, tt and loraxs need svd (TT-SVD, LoRA-XS init), mpo needs
   svd and nf4. */
#if defined(LORT_ONLY_LORA) || defined(LORT_ONLY_LORAXS) || defined(LORT_ONLY_TT) ||          \
    defined(LORT_ONLY_TT_REP) || defined(LORT_ONLY_TT_ADP) || defined(LORT_ONLY_CP) ||        \
    defined(LORT_ONLY_TUCKER) || defined(LORT_ONLY_MPO) || defined(LORT_ONLY_NF4) ||          \
    defined(LORT_ONLY_SVD)
#define LORT__ONLY 1
#else
#define LORT__ONLY 0
#endif

#if (LORT__ONLY && defined(LORT_ONLY_LORA)) || (!LORT__ONLY && !defined(LORT_NO_LORA))
#define LORT__WANT_LORA 1
#else
#define LORT__WANT_LORA 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_LORAXS)) || (!LORT__ONLY && !defined(LORT_NO_LORAXS))
#define LORT__WANT_LORAXS 1
#else
#define LORT__WANT_LORAXS 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_TT)) || (!LORT__ONLY && !defined(LORT_NO_TT))
#define LORT__WANT_TT 1
#else
#define LORT__WANT_TT 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_TT_REP)) || (!LORT__ONLY && !defined(LORT_NO_TT_REP))
#define LORT__WANT_TT_REP 1
#else
#define LORT__WANT_TT_REP 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_TT_ADP)) || (!LORT__ONLY && !defined(LORT_NO_TT_ADP))
#define LORT__WANT_TT_ADP 1
#else
#define LORT__WANT_TT_ADP 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_CP)) || (!LORT__ONLY && !defined(LORT_NO_CP))
#define LORT__WANT_CP 1
#else
#define LORT__WANT_CP 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_TUCKER)) || (!LORT__ONLY && !defined(LORT_NO_TUCKER))
#define LORT__WANT_TUCKER 1
#else
#define LORT__WANT_TUCKER 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_MPO)) || (!LORT__ONLY && !defined(LORT_NO_MPO))
#define LORT__WANT_MPO 1
#else
#define LORT__WANT_MPO 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_NF4)) || (!LORT__ONLY && !defined(LORT_NO_NF4))
#define LORT__WANT_NF4 1
#else
#define LORT__WANT_NF4 0
#endif
#if (LORT__ONLY && defined(LORT_ONLY_SVD)) || (!LORT__ONLY && !defined(LORT_NO_SVD))
#define LORT__WANT_SVD 1
#else
#define LORT__WANT_SVD 0
#endif
#define LORT__HAS_LORA LORT__WANT_LORA
#define LORT__HAS_LORAXS LORT__WANT_LORAXS
#define LORT__HAS_TT_REP LORT__WANT_TT_REP
#define LORT__HAS_TT_ADP LORT__WANT_TT_ADP
#define LORT__HAS_TT (LORT__WANT_TT || LORT__HAS_TT_REP || LORT__HAS_TT_ADP)
#define LORT__HAS_CP LORT__WANT_CP
#define LORT__HAS_TUCKER LORT__WANT_TUCKER
#define LORT__HAS_MPO LORT__WANT_MPO
#define LORT__HAS_NF4 (LORT__WANT_NF4 || LORT__HAS_MPO)
#define LORT__HAS_SVD (LORT__WANT_SVD || LORT__HAS_LORAXS || LORT__HAS_TT || LORT__HAS_MPO)
/* shared engines: the low-rank pipeline (>>lora), the joint tensor, the train (TT-SVD) */
#define LORT__HAS_LOWRANK                                                                     \
    (LORT__HAS_LORA || LORT__HAS_LORAXS || LORT__HAS_TT_REP || LORT__HAS_CP || LORT__HAS_TUCKER)
#define LORT__HAS_JOINT (LORT__HAS_CP || LORT__HAS_TUCKER)
#define LORT__HAS_TRAIN (LORT__HAS_TT || LORT__HAS_MPO)

#ifndef LORT_RESTRICT
#if defined(__cplusplus) || !defined(__STDC_VERSION__) || __STDC_VERSION__ < 199901L
#define LORT_RESTRICT __restrict
#else
#define LORT_RESTRICT restrict
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

// >>core ================================================================================== api

/* Status codes: 0 is success, errors are negative. Never renumbered, only appended. */
#define LORT__STATUS_LIST(X)                                                                  \
    X(LORT_OK, 0, "ok")                                                                       \
    X(LORT_ERR_NULL, -1, "a required pointer is NULL")                                        \
    X(LORT_ERR_INVALID_ARG, -2, "invalid argument: a size is <= 0 or an option is out of range") \
    X(LORT_ERR_SHAPE, -3, "shapes do not match")                                              \
    X(LORT_ERR_OVERFLOW, -4, "a size overflows int or size_t")                                \
    X(LORT_ERR_WORKSPACE, -5, "workspace too small")                                          \
    X(LORT_ERR_CACHE, -6, "cache too small")                                                  \
    X(LORT_ERR_OUT_OF_MEMORY, -7, "out of memory")                                            \
    X(LORT_ERR_UNSUPPORTED, -8, "unknown adapter kind or unsupported operation")              \
    X(LORT_ERR_NO_CONVERGENCE, -9, "iteration did not converge")                              \
    X(LORT_ERR_NONFINITE, -10, "input contains NaN or Inf")                                   \
    X(LORT_ERR_NOT_MERGEABLE, -11, "the adapter is not linear: it has no weight delta to merge") \
    X(LORT_ERR_NOT_FOUND, -12, "no entry of that name")                                       \
    X(LORT_ERR_FORMAT, -13, "malformed file or config: see the message buffer")

typedef enum lort_status {
#define LORT__STATUS_ENUM(name, value, msg) name = value,
    LORT__STATUS_LIST(LORT__STATUS_ENUM)
#undef LORT__STATUS_ENUM
    LORT__STATUS_MIN = -13
} lort_status;

/* Static message for a status; "unknown status" for a value not in the list. */
LORT_API const char *lort_status_string(lort_status status);

/* Version of the compiled implementation (compare with the LORT_VERSION_* macros). */
LORT_API void lort_version(int *major, int *minor, int *patch);
LORT_API const char *lort_version_string(void);

/* Name of the GEMM backend compiled in: "cblas", "builtin" (LORT_NO_BLAS) or "custom" (the
   LORT_SGEMM override, which wins over both). */
LORT_API const char *lort_gemm_backend(void);

/* Optional allocation helpers (kernels never allocate). NULL allocator = LORT_MALLOC/LORT_FREE.
   alloc(bytes, user) returns NULL on failure; free(ptr, user). */
typedef struct lort_allocator {
    void *user;
    void *(*alloc)(size_t bytes, void *user);
    void (*free)(void *ptr, void *user);
} lort_allocator;
/* *out = a new block of `bytes` (> 0) bytes, or LORT_ERR_OUT_OF_MEMORY with *out = NULL. */
LORT_API lort_status lort_alloc(const lort_allocator *allocator, size_t bytes, void **out);
LORT_API void lort_free(const lort_allocator *allocator, void *ptr);

/* x[0..count) = 0. */
LORT_API void lort_zero(float *x, size_t count);

// >>rng =================================================================================== api

/* Random numbers: explicit state, no rand(). */
typedef struct lort_rng {
    uint64_t state;
} lort_rng;
LORT_API void lort_rng_seed(lort_rng *rng, uint64_t seed);
LORT_API uint64_t lort_rng_u64(lort_rng *rng);
LORT_API float lort_rng_uniform(lort_rng *rng);   /* [0, 1) */
LORT_API float lort_rng_normal(lort_rng *rng);    /* N(0, 1), polar method in float */
/* Counter-based: a pure function of its arguments, uniform in [0, 1). Used for dropout. */
LORT_API float lort_hash_uniform(uint64_t seed, uint64_t row, uint64_t col);
/* Inverted-dropout factor of element (row, col): 0 with probability p, else 1/(1-p). */
LORT_API float lort_dropout_factor(uint64_t seed, float p, uint64_t row, uint64_t col);

// >>gemm ================================================================================== api

/* Row-major C (M, N) = alpha op(A) op(B) + beta C, op(X) = X or X^T (trans != 0), exactly
   cblas_sgemm(CblasRowMajor, ...). M, N, K >= 0; lda >= max(1, cols of A as stored), etc.
   beta == 0 overwrites C (NaN in C does not propagate). lort_sgemm uses the compiled backend;
   lort_sgemm_builtin is always the built-in blocked GEMM (the test reference). */
LORT_API lort_status lort_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                                const float *A, int lda, const float *B, int ldb, float beta,
                                float *C, int ldc);
LORT_API lort_status lort_sgemm_builtin(int transA, int transB, int M, int N, int K,
                                        float alpha, const float *A, int lda, const float *B,
                                        int ldb, float beta, float *C, int ldc);

/* ---- the base layer (nn.Linear) that adapters add to ----------------------------------- */
/* y (n, d_out) = x (n, d_in) W^T + b. W: (d_out, d_in); b: (d_out), may be NULL. */
LORT_API lort_status lort_linear_forward(float *y, const float *x, const float *W, const float *b,
                                         int n, int d_in, int d_out);
/* dx (n, d_in) += dy W; dW (d_out, d_in) += dy^T x; db (d_out) += sum over rows of dy.
   Each gradient may be NULL. */
LORT_API lort_status lort_linear_backward(float *dx, float *dW, float *db, const float *dy,
                                          const float *x, const float *W, int n, int d_in,
                                          int d_out);

// >>svd =================================================================================== api

/* Upper bounds of the iteration counts (a larger value is LORT_ERR_INVALID_ARG, so that no
   argument can make a call run for days): Jacobi converges in ~10 sweeps, the power iterations
   gain nothing measurable beyond a few dozen. */
#define LORT_SVD_MAX_POWER_ITERS 100
#define LORT_SVD_MAX_SWEEPS 1000
typedef struct lort_svd_opts {
    int exact;         /* nonzero: exact SVD (QR + Jacobi) instead of the randomized one; the
                          exact SVD is also used when r + oversample >= min(m, n) */
    int oversample;    /* extra probes l - r; 0 = default max(10, r/2) (capped by min(m, n)) */
    int power_iters;   /* 0 = default 5 (a value < 0 means none); at most
                          LORT_SVD_MAX_POWER_ITERS, else LORT_ERR_INVALID_ARG */
    int no_shift;      /* nonzero: plain power iterations, without the dynamic shift */
    int max_sweeps;    /* Jacobi sweep limit; 0 = default 60; at most LORT_SVD_MAX_SWEEPS */
    uint64_t seed;     /* probe seed; 0 is a valid seed */
} lort_svd_opts;

#if LORT__HAS_SVD
/* Truncated SVD of W (m, n), leading dimension ldw >= n: W ~= U diag(S) Vt, U (m, r),
   S (r), Vt (r, n), 1 <= r <= min(m, n). opts NULL = defaults. U may be NULL. Each row of Vt
   is signed so that its largest-magnitude entry is positive (U's columns follow). */
LORT_API lort_status lort_svd_truncated_workspace_size(int m, int n, int r,
                                                       const lort_svd_opts *opts, size_t *bytes);
LORT_API lort_status lort_svd_truncated(float *U, float *S, float *Vt, const float *W, int ldw,
                                        int m, int n, int r, const lort_svd_opts *opts,
                                        void *work, size_t work_size);
/* Full thin exact SVD, k = min(m, n): U (m, k) (may be NULL), S (k), Vt (k, n).
   max_sweeps: Jacobi sweep limit, 0 = default 60, at most LORT_SVD_MAX_SWEEPS. */
LORT_API lort_status lort_svd_jacobi_workspace_size(int m, int n, size_t *bytes);
LORT_API lort_status lort_svd_jacobi(float *U, float *S, float *Vt, const float *W, int ldw,
                                     int m, int n, int max_sweeps, void *work, size_t work_size);
#endif /* LORT__HAS_SVD */

// >>lora ================================================================================== api

typedef enum lort_lora_init_kind {
    LORT_LORA_INIT_DEFAULT = 0,    /* A ~ kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(d_in)), B = 0 */
    LORT_LORA_INIT_GAUSSIAN = 1    /* A ~ N(0, 1/r^2), B = 0 */
} lort_lora_init_kind;

typedef struct lort_lora_desc {
    int d_in, d_out, r;     /* required, > 0 */
    float alpha;            /* 0 = r (scale 1, or sqrt(r) with rslora) */
    int rslora;             /* nonzero: s = alpha / sqrt(r) instead of alpha / r */
    float dropout;          /* p in [0, 1); 0 = none */
    uint64_t dropout_seed;  /* key of the counter-based mask; change it every step */
    int init;               /* lort_lora_init_kind */
} lort_lora_desc;

#if LORT__HAS_LORA
LORT_API lort_status lort_lora_desc_resolve(const lort_lora_desc *desc, lort_lora_desc *out);
LORT_API lort_status lort_lora_scale(const lort_lora_desc *desc, float *scale);
LORT_API lort_status lort_lora_param_count(const lort_lora_desc *desc, size_t *count);
LORT_API lort_status lort_lora_cache_size(const lort_lora_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_lora_workspace_size(const lort_lora_desc *desc, int n, size_t *bytes);
/* A: (r, d_in), B: (d_out, r) */
LORT_API lort_status lort_lora_init(const lort_lora_desc *desc, float *A, float *B, lort_rng *rng);
/* y: (n, d_out) += s drop(x) A^T B^T.  x: (n, d_in). cache (optional): H (n, r). */
LORT_API lort_status lort_lora_forward(const lort_lora_desc *desc, float *y, const float *x,
                                       const float *A, const float *B, int n, void *cache,
                                       size_t cache_size, void *work, size_t work_size);
/* dx (n, d_in), dA (r, d_in), dB (d_out, r) accumulate; each may be NULL. dy: (n, d_out).
   cache: the one forward filled for the same x, or NULL to recompute it. */
LORT_API lort_status lort_lora_backward(const lort_lora_desc *desc, float *dx, float *dA,
                                        float *dB, const float *dy, const float *x,
                                        const float *A, const float *B, int n,
                                        const void *cache, size_t cache_size, void *work,
                                        size_t work_size);
/* W: (d_out, d_in) += weight * s B A (weight +1 merges, -1 unmerges). */
LORT_API lort_status lort_lora_merge(const lort_lora_desc *desc, float *W, const float *A,
                                     const float *B, float weight, void *work,
                                     size_t work_size);
/* dW: (d_out, d_in) = s B A. */
LORT_API lort_status lort_lora_delta(const lort_lora_desc *desc, float *dW, const float *A,
                                     const float *B, void *work, size_t work_size);
#endif /* LORT__HAS_LORA */

// >>loraxs ================================================================================ api

typedef struct lort_loraxs_desc {
    int d_in, d_out, r;     /* required, > 0, r <= min(d_in, d_out) */
    float alpha;            /* 0 = r (scale 1, or sqrt(r) with rslora) */
    int rslora;             /* nonzero: s = alpha / sqrt(r) */
    float dropout;          /* p in [0, 1) */
    uint64_t dropout_seed;
    float init_std;         /* std of R at init; 0 = 1e-5 */
    lort_svd_opts svd;      /* how init factors W0 (default: randomized) */
} lort_loraxs_desc;

#if LORT__HAS_LORAXS
LORT_API lort_status lort_loraxs_desc_resolve(const lort_loraxs_desc *desc,
                                              lort_loraxs_desc *out);
LORT_API lort_status lort_loraxs_scale(const lort_loraxs_desc *desc, float *scale);
LORT_API lort_status lort_loraxs_param_count(const lort_loraxs_desc *desc, size_t *count);
LORT_API lort_status lort_loraxs_frozen_count(const lort_loraxs_desc *desc, size_t *count);
LORT_API lort_status lort_loraxs_cache_size(const lort_loraxs_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_loraxs_workspace_size(const lort_loraxs_desc *desc, int n,
                                                size_t *bytes);
LORT_API lort_status lort_loraxs_init_workspace_size(const lort_loraxs_desc *desc,
                                                     size_t *bytes);
/* From W0 (d_out, d_in): A (r, d_in) = S_r V_r^T, B (d_out, r) = U_r, R (r, r) ~ N(0, std^2). */
LORT_API lort_status lort_loraxs_init(const lort_loraxs_desc *desc, float *R, float *A, float *B,
                                      const float *W0, lort_rng *rng, void *work,
                                      size_t work_size);
/* y (n, d_out) += s drop(x) A^T R^T B^T. cache (optional): H1 (n, r). */
LORT_API lort_status lort_loraxs_forward(const lort_loraxs_desc *desc, float *y, const float *x,
                                         const float *R, const float *A, const float *B, int n,
                                         void *cache, size_t cache_size, void *work,
                                         size_t work_size);
/* dx (n, d_in) and dR (r, r) accumulate; either may be NULL. */
LORT_API lort_status lort_loraxs_backward(const lort_loraxs_desc *desc, float *dx, float *dR,
                                          const float *dy, const float *x, const float *R,
                                          const float *A, const float *B, int n,
                                          const void *cache, size_t cache_size, void *work,
                                          size_t work_size);
/* W (d_out, d_in) += weight * s B R A. */
LORT_API lort_status lort_loraxs_merge(const lort_loraxs_desc *desc, float *W, const float *R,
                                       const float *A, const float *B, float weight,
                                       void *work, size_t work_size);
LORT_API lort_status lort_loraxs_delta(const lort_loraxs_desc *desc, float *dW, const float *R,
                                       const float *A, const float *B, void *work,
                                       size_t work_size);
#endif /* LORT__HAS_LORAXS */

// >>tt ==================================================================================== api

/* A tensor train of a reshaped matrix (the "TT layer" of LoRETTA; MATH >>tt). The matrix
   (rows, cols) is the row-major reshape of the d-way tensor with modes n_k (prod n_k = rows*cols;
   the row/column split may fall inside a mode). Core k is G_k (t_{k-1}, n_k, t_k), t_0 = t_d = 1.
   Shared by the tt kernels and TT-SVD; the kernels are added by the tt family. */
#define LORT_TT_MAX_CORES 16
typedef struct lort_tt_desc {
    int rows, cols;                      /* the matrix; LoRETTA's W_tt is (in, out) */
    int n_cores;                         /* d, the number of cores, 1..LORT_TT_MAX_CORES */
    int modes[LORT_TT_MAX_CORES];        /* n_1..n_d, each > 0 */
    int ranks[LORT_TT_MAX_CORES + 1];    /* t_0..t_d; t_0 = t_d = 1; an inner 0 = `rank` */
    int rank;                            /* uniform inner rank for the entries left 0 */
} lort_tt_desc;

/* The tt layer maps rows -> cols: y (n, cols) += x (n, rows) W_tt (+ bias), W_tt (rows, cols)
   the row-major reshape of the train (the transpose of the nn.Linear layout). The cores are one
   flat vector: core k (t_{k-1}, n_k, t_k) row-major at offset sum_{m<k} t_{m-1} n_m t_m.
   Bad mode lists are statuses: n_cores outside 1..LORT_TT_MAX_CORES, a mode, rows or cols
   <= 0, an inner rank <= 0 (after the default), t_0 or t_d other than 0 or 1
   (LORT_ERR_INVALID_ARG); rows*cols, a partial product of the modes or a core size above
   INT_MAX (LORT_ERR_OVERFLOW); prod n_k != rows*cols (LORT_ERR_SHAPE). */
#if LORT__HAS_TT
/* A copy of desc with every rank filled in (t_0 = t_d = 1, inner zeros = rank). */
LORT_API lort_status lort_tt_desc_resolve(const lort_tt_desc *desc, lort_tt_desc *out);
/* Floats of the cores: sum_k t_{k-1} n_k t_k. */
LORT_API lort_status lort_tt_param_count(const lort_tt_desc *desc, size_t *count);
/* Two evaluations, picked per call by a MAC count at n rows (the same pick for forward and
   backward, with or without a cache): at few rows x is contracted with one core at a time and
   W_tt is never formed (forward, dx and the core gradients each cost about n times the cores'
   contraction); at many rows W_tt is materialised (the prefix and suffix chains meeting where
   it is cheapest) and used by GEMMs. Trains whose rows end inside a mode that they do not
   divide always take the second. cache: the prefix chain G_1..G_k for k = 2..d (the last is
   W_tt), and at few rows the partial contractions of x. */
LORT_API lort_status lort_tt_cache_size(const lort_tt_desc *desc, int n, size_t *bytes);
/* One size for forward, backward, to_dense and grad_dense (n = 1 for the latter two). */
LORT_API lort_status lort_tt_workspace_size(const lort_tt_desc *desc, int n, size_t *bytes);
/* LoRETTA's init: core k ~ N(0, sigma^(2/d) / t_k), sigma^2 = 1 / (rows + cols), so that every
   entry of W_tt has mean 0 and variance exactly 1 / (rows + cols). */
LORT_API lort_status lort_tt_init(const lort_tt_desc *desc, float *cores, lort_rng *rng);
/* W (rows, cols) = W_tt, by the prefix chain (d - 1 GEMMs). */
LORT_API lort_status lort_tt_to_dense(const lort_tt_desc *desc, float *W, const float *cores,
                                      void *work, size_t work_size);
/* dcores += the pullback of a dense gradient dW (rows, cols) of W_tt to the cores, through
   prefix/suffix environments (at most two GEMMs per core). */
LORT_API lort_status lort_tt_grad_dense(const lort_tt_desc *desc, float *dcores, const float *dW,
                                        const float *cores, void *work, size_t work_size);
/* y (n, cols) += x (n, rows) W_tt + bias; bias (cols) may be NULL. cache optional. */
LORT_API lort_status lort_tt_forward(const lort_tt_desc *desc, float *y, const float *x,
                                     const float *cores, const float *bias, int n, void *cache,
                                     size_t cache_size, void *work, size_t work_size);
/* dx (n, rows) += dy W_tt^T; dcores += d<dy, x W_tt>/dcores; dbias (cols) += sum over rows of
   dy. Each gradient may be NULL. cache: the one forward filled from the same cores, or NULL. */
LORT_API lort_status lort_tt_backward(const lort_tt_desc *desc, float *dx, float *dcores,
                                      float *dbias, const float *dy, const float *x,
                                      const float *cores, int n, const void *cache,
                                      size_t cache_size, void *work, size_t work_size);

/* ---- TT-SVD and rounding of the tt form (lort_tt_desc: the matrix is the row-major reshape
   of the train). Core k is G_k (t_{k-1}, n_k, t_k), cores stored one after another. A rank
   larger than the data supports is padded with zeros. opts NULL = default SVD. */
LORT_API lort_status lort_tt_svd_workspace_size(const lort_tt_desc *desc,
                                                const lort_svd_opts *opts, size_t *bytes);
/* cores = TT-SVD of W (rows, cols); err (optional) = ||W - TT||_F. */
LORT_API lort_status lort_tt_svd(const lort_tt_desc *desc, float *cores, float *err,
                                 const float *W, const lort_svd_opts *opts, void *work,
                                 size_t work_size);
LORT_API lort_status lort_tt_round_workspace_size(const lort_tt_desc *from,
                                                  const lort_tt_desc *to, size_t *bytes);
/* Re-truncates a train to the (smaller) ranks of `to` (same modes): right-to-left
   orthogonalisation, then left-to-right truncated SVDs. err_bound (optional) = sqrt(sum of the
   squared discarded singular values) >= ||TT(in) - TT(out)||_F (equal in exact arithmetic). */
LORT_API lort_status lort_tt_round(const lort_tt_desc *from, const lort_tt_desc *to,
                                   float *cores_out, float *err_bound, const float *cores_in,
                                   void *work, size_t work_size);
#endif /* LORT__HAS_TT */

// >>tt_rep ================================================================================ api

/* LoRETTA_rep: a LoRA whose factors are tt matrices. */
typedef struct lort_tt_rep_desc {
    int d_in, d_out, r;     /* required, > 0 */
    float alpha;            /* 0 = r; s = alpha / r */
    float dropout;          /* p in [0, 1) on the adapter's input */
    uint64_t dropout_seed;
    lort_tt_desc A;         /* W_A (d_in, r); rows, cols 0 = d_in, r */
    lort_tt_desc B;         /* W_B (r, d_out); rows, cols 0 = r, d_out */
} lort_tt_rep_desc;

#if LORT__HAS_TT_REP
LORT_API lort_status lort_tt_rep_desc_resolve(const lort_tt_rep_desc *desc,
                                              lort_tt_rep_desc *out);
LORT_API lort_status lort_tt_rep_scale(const lort_tt_rep_desc *desc, float *scale);
/* params: the cores of A, then the cores of B. */
LORT_API lort_status lort_tt_rep_param_count(const lort_tt_rep_desc *desc, size_t *count);
LORT_API lort_status lort_tt_rep_cache_size(const lort_tt_rep_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_tt_rep_workspace_size(const lort_tt_rep_desc *desc, int n,
                                                size_t *bytes);
/* Both trains as lort_tt_init: W_A entries variance 1/(d_in + r), W_B 1/(r + d_out). */
LORT_API lort_status lort_tt_rep_init(const lort_tt_rep_desc *desc, float *params,
                                      lort_rng *rng);
/* y (n, d_out) += s drop(x) W_A W_B, each train evaluated as lort_tt_forward picks at n rows.
   cache (optional): H = drop(x) W_A (n, r), and the trains' partial contractions at few rows. */
LORT_API lort_status lort_tt_rep_forward(const lort_tt_rep_desc *desc, float *y, const float *x,
                                         const float *params, int n, void *cache,
                                         size_t cache_size, void *work, size_t work_size);
/* dx (n, d_in) and dparams accumulate; either may be NULL. */
LORT_API lort_status lort_tt_rep_backward(const lort_tt_rep_desc *desc, float *dx,
                                          float *dparams, const float *dy, const float *x,
                                          const float *params, int n, const void *cache,
                                          size_t cache_size, void *work, size_t work_size);
/* W (d_out, d_in) += weight * s (W_A W_B)^T. */
LORT_API lort_status lort_tt_rep_merge(const lort_tt_rep_desc *desc, float *W,
                                       const float *params, float weight, void *work,
                                       size_t work_size);
/* dW (d_out, d_in) = s (W_A W_B)^T. */
LORT_API lort_status lort_tt_rep_delta(const lort_tt_rep_desc *desc, float *dW,
                                       const float *params, void *work, size_t work_size);
#endif /* LORT__HAS_TT_REP */

// >>tt_adp ================================================================================ api

/* LoRETTA_adp: the tensorised bottleneck adapter. */
typedef enum lort_act {
    LORT_ACT_RELU = 0,        /* max(z, 0); derivative 0 at z = 0 (as PyTorch) */
    LORT_ACT_TANH = 1,
    LORT_ACT_GELU = 2,        /* erf form, PyTorch's default nn.GELU: z Phi(z) */
    LORT_ACT_GELU_TANH = 3    /* nn.GELU(approximate='tanh') */
} lort_act;
typedef enum lort_tt_adp_placement {
    LORT_TT_ADP_OUTPUT = 0,   /* on a layer's output: y = y0 + f(y0), in place in y */
    LORT_TT_ADP_INPUT = 1     /* on a layer's input: x' = x + f(x) */
} lort_tt_adp_placement;
typedef struct lort_tt_adp_desc {
    int hidden, bottleneck;   /* required, > 0 */
    float scale;              /* s; 0 = 1 */
    int act;                  /* lort_act; 0 = ReLU (every LoRETTA script) */
    int placement;            /* lort_tt_adp_placement */
    float dropout;            /* p in [0, 1) on the adapter's input */
    uint64_t dropout_seed;
    lort_tt_desc down;        /* W_down (hidden, bottleneck); rows, cols 0 = those */
    lort_tt_desc up;          /* W_up (bottleneck, hidden); n_cores 0 = down's modes, ranks */
} lort_tt_adp_desc;

#if LORT__HAS_TT_ADP
LORT_API lort_status lort_tt_adp_desc_resolve(const lort_tt_adp_desc *desc,
                                              lort_tt_adp_desc *out);
/* params: cores of down, cores of up, beta_d (bottleneck), beta_u (hidden). */
LORT_API lort_status lort_tt_adp_param_count(const lort_tt_adp_desc *desc, size_t *count);
/* cache: the adapter's input after dropout (n, hidden), Z (n, bottleneck), and per train
   (evaluated as lort_tt_forward picks at n rows) the materialised train (hidden * bottleneck)
   or, at few rows, its partial contractions. */
LORT_API lort_status lort_tt_adp_cache_size(const lort_tt_adp_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_tt_adp_workspace_size(const lort_tt_adp_desc *desc, int n,
                                                size_t *bytes);
/* Cores as lort_tt_init; beta_d ~ U(+-1/sqrt(bottleneck)), beta_u ~ U(+-1/sqrt(hidden)) (the
   nn.Linear bias init of LoRETTA's TT layers). f is not zero at init. */
LORT_API lort_status lort_tt_adp_init(const lort_tt_adp_desc *desc, float *params,
                                      lort_rng *rng);
/* y (n, hidden) += f(u), f(u) = s (act(drop(u) W_down + beta_d) W_up + beta_u). u (n, hidden)
   is the adapter's input, in forward and backward alike:
     LORT_TT_ADP_INPUT:  u = x; x may equal y (x' = x + f(x) in place).
     LORT_TT_ADP_OUTPUT: u = y0, the value y holds on entry (y = y0 + f(y0) in place); pass
                         u = y or NULL (anything else is LORT_ERR_INVALID_ARG).
   cache (optional) keeps u for backward. Without a cache, backward needs u again: with the
   output placement forward has overwritten y0, so keep a copy of it to pass to backward. */
LORT_API lort_status lort_tt_adp_forward(const lort_tt_adp_desc *desc, float *y, const float *u,
                                         const float *params, int n, void *cache,
                                         size_t cache_size, void *work, size_t work_size);
/* dx (n, hidden) += J_f^T dy (dx may equal dy: then dx = dy + J_f^T dy, the gradient of the
   residual u + f(u)); dparams accumulate (NULL skips). u: the adapter's input (see forward;
   y0 for the output placement), read only when cache is NULL (then required). */
LORT_API lort_status lort_tt_adp_backward(const lort_tt_adp_desc *desc, float *dx,
                                          float *dparams, const float *dy, const float *u,
                                          const float *params, int n, const void *cache,
                                          size_t cache_size, void *work, size_t work_size);
#endif /* LORT__HAS_TT_ADP */

// >>cp ==================================================================================== api

/* LoRTA (MATH >>cp): ONE rank-r CP tensor over (model dim d, head dim d_h = d/H, heads H,
   layers L, matrix types M) holds the updates of every adapted d x d matrix of a model. A site
   is one adapted matrix (layer l, matrix m); all sites share one flat parameter block
       A (d, r), B (r, d_h), C_H (H, r), C_L (L, r), C_M (M, r)        in this order,
   so param_count = r (d + d_h + H + L + M). Matrix types are the caller's indices 0..M-1;
   the LORT_CP_Q/K/V/O names below are only the default meaning of 0..3 (GQA uses them). */
enum { LORT_CP_Q = 0, LORT_CP_K = 1, LORT_CP_V = 2, LORT_CP_O = 3 };

typedef enum lort_cp_heads {
    LORT_CP_HEADS_OUT = 0,   /* default, lit-gpt (instruction tuning): y += s drop(x) D,
                                A on the input side, heads split the output columns */
    LORT_CP_HEADS_IN = 1     /* HF-PEFT (GLUE runs): y += s drop(x) D^T, A on the output
                                side, heads split the input columns */
} lort_cp_heads;

typedef struct lort_cp_desc {
    int d, heads, layers;   /* required, > 0; d % heads == 0 (else LORT_ERR_SHAPE) */
    int matrices;           /* M, 0 = 4 (Q, K, V, O) */
    int r;                  /* required, > 0 */
    float alpha;            /* 0 = r (scale 1, or sqrt(r) with rslora) */
    int rslora;             /* nonzero: s = alpha / sqrt(r) instead of alpha / r */
    float dropout;          /* p in [0, 1) on x, before the adapter; same seed = same mask */
    uint64_t dropout_seed;
    int head_side;          /* lort_cp_heads */
    int kv_heads;           /* grouped-query attention: heads of K and V, 0 = heads (MHA);
                               must divide heads; only with LORT_CP_HEADS_OUT */
    unsigned kv_matrices;   /* bit m set: matrix type m has kv_heads heads; 0 = K|V (bits 1,2) */
    float init_scale;       /* C_* ~ kaiming_uniform(a = sqrt(5) init_scale); 0 as every
                               official LoRTA script: U(+-sqrt(6/r)) */
} lort_cp_desc;

#if LORT__HAS_CP
LORT_API lort_status lort_cp_desc_resolve(const lort_cp_desc *desc, lort_cp_desc *out);
LORT_API lort_status lort_cp_scale(const lort_cp_desc *desc, float *scale);
LORT_API lort_status lort_cp_param_count(const lort_cp_desc *desc, size_t *count);
/* The nn.Linear shape of site matrix m: d_in = d; d_out = d, or kv_heads d_h for a GQA type. */
LORT_API lort_status lort_cp_site_dims(const lort_cp_desc *desc, int matrix, int *d_in,
                                       int *d_out);
LORT_API lort_status lort_cp_cache_size(const lort_cp_desc *desc, int n, size_t *bytes);
/* One size for forward, backward, merge and delta of any site at n rows. */
LORT_API lort_status lort_cp_workspace_size(const lort_cp_desc *desc, int n, size_t *bytes);
/* A ~ U(+-1/sqrt(r)), B = 0 (so every dW = 0), C_H, C_L, C_M ~ U(+-bound(init_scale)). */
LORT_API lort_status lort_cp_init(const lort_cp_desc *desc, float *params, lort_rng *rng);
/* Site (layer, matrix): y (n, d_out) += s dy_site; x: (n, d). Costs a rank-r LoRA.
   cache (optional): (n, r). */
LORT_API lort_status lort_cp_forward(const lort_cp_desc *desc, float *y, const float *x,
                                     const float *params, int layer, int matrix, int n,
                                     void *cache, size_t cache_size, void *work,
                                     size_t work_size);
/* dx (n, d) and dparams (the flat layout) ACCUMULATE, so calling it for every site sums the
   shared factor gradients over sites; either may be NULL. dy: (n, d_out). */
LORT_API lort_status lort_cp_backward(const lort_cp_desc *desc, float *dx, float *dparams,
                                      const float *dy, const float *x, const float *params,
                                      int layer, int matrix, int n, const void *cache,
                                      size_t cache_size, void *work, size_t work_size);
/* W (d_out, d) += weight * dW_site (nn.Linear layout). */
LORT_API lort_status lort_cp_merge(const lort_cp_desc *desc, float *W, const float *params,
                                   int layer, int matrix, float weight, void *work,
                                   size_t work_size);
LORT_API lort_status lort_cp_delta(const lort_cp_desc *desc, float *dW, const float *params,
                                   int layer, int matrix, void *work, size_t work_size);
#endif /* LORT__HAS_CP */

// >>tucker ================================================================================ api

/* The joint tensor of cp in Tucker form (MATH >>tucker): core C (r1, r2, rH, rL, rM) and
   factors A (d, r1), B (r2, d_h), C_H (H, rH), C_L (L, rL), C_M (M, rM); flat layout
       core, A, B, C_H, C_L, C_M                                         in this order.
   Site (l, m), head h: K_h = sum_{a,b,c} C[:, :, a, b, c] C_H[h, a] C_L[l, b] C_M[m, c]
   (r1, r2), and head block h of the site's D (d, d) is A K_h B; D is used as in cp
   (head_side). Configurations: CP = superdiagonal core; LoTR = heads 1, rH = rM = 1,
   rL = L, C_L = I, C_H = C_M = 1 (LORT_TUCKER_INIT_LOTR); FacT-TK = heads 1, layers 1, one
   matrix type per stacked slice, rH = rL = 1, C_M = P^T (LORT_TUCKER_INIT_FACT_TK). */
typedef enum lort_tucker_init_kind {
    LORT_TUCKER_INIT_DEFAULT = 0,   /* as cp, core = ones at (k mod r1, k mod r2, k mod rH,
                                       k mod rL, k mod rM), k < max rank: the superdiagonal
                                       (a CP) when the ranks are equal; every core slice is
                                       non-zero, so no part of the adapter starts frozen */
    LORT_TUCKER_INIT_LOTR = 1,      /* LoTR: A, B ~ N(0, 1), core = 0, C_L = I, C_H = C_M = 1 */
    LORT_TUCKER_INIT_FACT_TK = 2    /* FacT-TK: A ~ U(+-1/sqrt(d)), B = 0, core ~ Xavier U(+-
                                       sqrt(3)/r1), C_M ~ Xavier U(+-sqrt(6/(M + rM))), C_H =
                                       C_L = 1 */
} lort_tucker_init_kind;

typedef struct lort_tucker_desc {
    int d, heads, layers;   /* required, > 0; d % heads == 0 */
    int matrices;           /* M, 0 = 4 */
    int r1, r2;             /* required, > 0: ranks of the d and d_h modes */
    int rh, rl, rm;         /* ranks of the head, layer and matrix modes; 0 = r1 */
    float alpha;            /* 0 = r1; s = alpha / r1 (or / sqrt(r1) with rslora) */
    int rslora;
    float dropout;
    uint64_t dropout_seed;
    int head_side;          /* lort_cp_heads */
    int kv_heads;           /* as cp */
    unsigned kv_matrices;
    int init;               /* lort_tucker_init_kind */
} lort_tucker_desc;

#if LORT__HAS_TUCKER
LORT_API lort_status lort_tucker_desc_resolve(const lort_tucker_desc *desc,
                                              lort_tucker_desc *out);
LORT_API lort_status lort_tucker_scale(const lort_tucker_desc *desc, float *scale);
/* r1 r2 rH rL rM + d r1 + r2 d_h + H rH + L rL + M rM */
LORT_API lort_status lort_tucker_param_count(const lort_tucker_desc *desc, size_t *count);
LORT_API lort_status lort_tucker_site_dims(const lort_tucker_desc *desc, int matrix, int *d_in,
                                           int *d_out);
LORT_API lort_status lort_tucker_cache_size(const lort_tucker_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_tucker_workspace_size(const lort_tucker_desc *desc, int n,
                                                size_t *bytes);
LORT_API lort_status lort_tucker_init(const lort_tucker_desc *desc, float *params,
                                      lort_rng *rng);
LORT_API lort_status lort_tucker_forward(const lort_tucker_desc *desc, float *y, const float *x,
                                         const float *params, int layer, int matrix, int n,
                                         void *cache, size_t cache_size, void *work,
                                         size_t work_size);
LORT_API lort_status lort_tucker_backward(const lort_tucker_desc *desc, float *dx,
                                          float *dparams, const float *dy, const float *x,
                                          const float *params, int layer, int matrix, int n,
                                          const void *cache, size_t cache_size, void *work,
                                          size_t work_size);
LORT_API lort_status lort_tucker_merge(const lort_tucker_desc *desc, float *W,
                                       const float *params, int layer, int matrix, float weight,
                                       void *work, size_t work_size);
LORT_API lort_status lort_tucker_delta(const lort_tucker_desc *desc, float *dW,
                                       const float *params, int layer, int matrix, void *work,
                                       size_t work_size);
#endif /* LORT__HAS_TUCKER */

// >>nf4 =================================================================================== api

/* NF4, QLoRA's 4-bit NormalFloat, exactly as bitsandbytes: the row-major matrix is cut into
   blocks of LORT_NF4_BLOCK = 64 consecutive elements (the last one may be short); each block
   keeps its absmax a (fp32) and every element the code of the level nearest to w (1/a) (ties go
   down, as bitsandbytes' decision tree; an all-zero block gets a = 0 and code 0, as there);
   dequantised w = level[code] * a. Two codes per byte, element 2i in the HIGH nibble. Blob
   layout (any alignment): a[ceil(count/64)] as fp32, then ceil(count/2) code bytes: 4.5 bits
   per entry. */
#define LORT_NF4_BLOCK 64
#if LORT__HAS_NF4
/* The 16 levels, code 0 (-1) .. code 15 (+1); 0 for a code outside 0..15. */
LORT_API float lort_nf4_level(int code);
/* Bytes of the NF4 blob of a weight W (d_out, d_in). The shape scalars come in the layer
   order (d_in, d_out) of lort_nf4_linear_*; only their product matters to the blob. */
LORT_API lort_status lort_nf4_size(int d_in, int d_out, size_t *bytes);
/* q (blob of lort_nf4_size bytes) = NF4(W (d_out, d_in)). W must be finite. */
LORT_API lort_status lort_nf4_quantize(void *q, const float *W, int d_in, int d_out);
/* W (d_out, d_in) = dequantised q. */
LORT_API lort_status lort_nf4_dequantize(float *W, const void *q, int d_in, int d_out);
/* Workspace of the NF4 linear kernels: one tile of dequantised rows of W (never all of W). */
LORT_API lort_status lort_nf4_linear_workspace_size(int n, int d_in, int d_out, size_t *bytes);
/* y (n, d_out) += x (n, d_in) deq(Wq)^T, Wq the blob of a (d_out, d_in) weight: tiles of rows
   of W are dequantised into the workspace, each followed by one GEMM. */
LORT_API lort_status lort_nf4_linear_forward(float *y, const float *x, const void *Wq, int n,
                                             int d_in, int d_out, void *work, size_t work_size);
/* dx (n, d_in) += dy (n, d_out) deq(Wq), tile by tile. */
LORT_API lort_status lort_nf4_linear_backward(float *dx, const float *dy, const void *Wq, int n,
                                              int d_in, int d_out, void *work,
                                              size_t work_size);
#endif /* LORT__HAS_NF4 */

// >>mpo =================================================================================== api

/* A matrix product operator (TT-matrix; MATH >>mpo) of a (d_out, d_in) matrix M, with
   d_out = prod i_k (row factors) and d_in = prod j_k (column factors). Core k is
   T_k (D_{k-1}, i_k, j_k, D_k), D_0 = D_N = 1, and
       M[row(a), col(b)] = T_1[0,a_1,b_1,:] T_2[:,a_2,b_2,:] ... T_N[:,a_N,b_N,0],
   row(a) = (..(a_1 i_2 + a_2) i_3 ..) + a_N, col(b) likewise: the TT of M reshaped to
   (i_1..i_N, j_1..j_N) and permuted to the interleaved (i_1, j_1, i_2, j_2, ...).
   DoTA (Hu et al. 2024): the cores are initialised by a truncated TT-SVD of W0 and trained; the
   frozen residual W_res = W0 - MPO(W0) keeps the layer exact at init; QDoTA holds W_res in NF4. */
#define LORT_MPO_MAX_CORES 16
typedef enum lort_mpo_path {
    LORT_MPO_AUTO = 0,       /* the cheaper of the two by a FLOP estimate at n rows */
    LORT_MPO_FACTORED = 1,   /* contract x with one core at a time; M is never formed */
    LORT_MPO_DENSE = 2       /* materialise M (d_out, d_in), then GEMM */
} lort_mpo_path;
typedef enum lort_mpo_residual {
    LORT_MPO_RESIDUAL_NONE = 0,   /* a plain additive adapter: y += x M^T */
    LORT_MPO_RESIDUAL_F32 = 1,    /* DoTA: y += x (W_res + M)^T, W_res fp32 (d_out, d_in) */
    LORT_MPO_RESIDUAL_NF4 = 2     /* QDoTA: W_res as an NF4 blob (lort_nf4_size bytes) */
} lort_mpo_residual;
typedef struct lort_mpo_desc {
    int d_in, d_out;                       /* 0 = the product of the factors; else must equal it */
    int n_cores;                           /* N, 1..LORT_MPO_MAX_CORES */
    int row_factors[LORT_MPO_MAX_CORES];   /* i_1..i_N > 0, prod = d_out */
    int col_factors[LORT_MPO_MAX_CORES];   /* j_1..j_N > 0, prod = d_in */
    int bonds[LORT_MPO_MAX_CORES + 1];     /* D_0..D_N; D_0, D_N: 0 or 1; an inner 0 = `bond` */
    int bond;                              /* D, the bond dimension of the inner bonds left 0 */
    int path;                              /* lort_mpo_path */
    int residual;                          /* lort_mpo_residual: what `residual` points to */
    lort_svd_opts svd;                     /* SVDs of init / lort_mpo_from_dense */
} lort_mpo_desc;
#if LORT__HAS_MPO
/* Effective bonds: D_k = min(D_k, D_{k-1} i_k j_k, D_{k+1} i_{k+1} j_{k+1}) (never more than
   the exact TT rank bound min(prod_{m<=k} i_m j_m, prod_{m>k} i_m j_m)); resolve shows them. */
LORT_API lort_status lort_mpo_desc_resolve(const lort_mpo_desc *desc, lort_mpo_desc *out);
/* Floats of the flat core vector T_1..T_N (each row-major), and the offset of core k (0-based). */
LORT_API lort_status lort_mpo_param_count(const lort_mpo_desc *desc, size_t *count);
LORT_API lort_status lort_mpo_core_offset(const lort_mpo_desc *desc, int k, size_t *offset);
/* Bytes of the residual buffer: 0 (NONE), 4 d_out d_in (F32: floats, float-aligned),
   lort_nf4_size(d_in, d_out) (NF4: a byte blob, any alignment). */
LORT_API lort_status lort_mpo_residual_size(const lort_mpo_desc *desc, size_t *bytes);
/* The path forward/backward take at n rows (LORT_MPO_FACTORED or LORT_MPO_DENSE). */
LORT_API lort_status lort_mpo_path_used(const lort_mpo_desc *desc, int n, int *path);
/* Cache and workspace at n rows; they also serve every call with fewer rows (with AUTO the
   path may differ at fewer rows: the sizes cover both then). The dense path caches nothing. */
LORT_API lort_status lort_mpo_cache_size(const lort_mpo_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_mpo_workspace_size(const lort_mpo_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_mpo_init_workspace_size(const lort_mpo_desc *desc, size_t *bytes);
/* cores = left-to-right truncated TT-SVD of W (d_out, d_in) in the interleaved order (left-
   canonical: cores 1..N-1 have orthonormal columns). err (optional) = ||W - MPO||_F.
   Workspace: lort_mpo_init_workspace_size. */
LORT_API lort_status lort_mpo_from_dense(const lort_mpo_desc *desc, float *cores, float *err,
                                         const float *W, void *work, size_t work_size);
/* DoTA init: cores = TT-SVD(W0) and, per desc->residual, residual = W0 - MPO(cores) (F32) or
   NF4(W0 - MPO(cores)) (NF4; residual may be NULL for NONE). err (optional) = ||W0 - MPO||_F,
   the truncation error (with F32 the layer is exact: W_res + MPO = W0 up to rounding). With F32
   the residual may be W0 itself (W0 is overwritten by W_res: no second d_out x d_in buffer). */
LORT_API lort_status lort_mpo_init(const lort_mpo_desc *desc, float *cores, void *residual,
                                   float *err, const float *W0, void *work, size_t work_size);
/* y (n, d_out) += x (n, d_in) (W_res + M)^T (no W_res for NONE). cache (optional, factored
   path only): the partial contractions. */
LORT_API lort_status lort_mpo_forward(const lort_mpo_desc *desc, float *y, const float *x,
                                      const float *cores, const void *residual, int n,
                                      void *cache, size_t cache_size, void *work,
                                      size_t work_size);
/* dx (n, d_in) += dy (W_res + M); dcores (flat, as cores) += dL/dcores; either may be NULL. */
LORT_API lort_status lort_mpo_backward(const lort_mpo_desc *desc, float *dx, float *dcores,
                                       const float *dy, const float *x, const float *cores,
                                       const void *residual, int n, const void *cache,
                                       size_t cache_size, void *work, size_t work_size);
/* W (d_out, d_in) += weight (W_res + M);  delta: dW = W_res + M (the layer's whole weight
   for DoTA, just M for NONE). */
LORT_API lort_status lort_mpo_merge(const lort_mpo_desc *desc, float *W, const float *cores,
                                    const void *residual, float weight, void *work,
                                    size_t work_size);
LORT_API lort_status lort_mpo_delta(const lort_mpo_desc *desc, float *dW, const float *cores,
                                    const void *residual, void *work, size_t work_size);
/* TT rounding of an MPO to the (smaller) bonds of `to` (same factors), as lort_tt_round on the
   interleaved train: err_bound (optional) >= ||MPO(in) - MPO(out)||_F. */
LORT_API lort_status lort_mpo_round_workspace_size(const lort_mpo_desc *from,
                                                   const lort_mpo_desc *to, size_t *bytes);
LORT_API lort_status lort_mpo_round(const lort_mpo_desc *from, const lort_mpo_desc *to,
                                    float *cores_out, float *err_bound, const float *cores_in,
                                    void *work, size_t work_size);
#endif /* LORT__HAS_MPO */

// >>adapter =============================================================================== api

typedef enum lort_kind {
    LORT_KIND_NONE = 0,
    LORT_KIND_LORA = 1,
    LORT_KIND_LORAXS = 2,
    LORT_KIND_TT_REP = 3,
    LORT_KIND_MPO = 4,
    LORT_KIND_CP = 5,
    LORT_KIND_TUCKER = 6,
    LORT_KIND_TT_ADP = 7
} lort_kind;

/* One adapted matrix of any family. params and grads are one flat float vector each, in the
   family's layout (lort_adapter_sizes.params floats; grads NULL = no parameter gradients).
   frozen is the family's frozen data, lort_adapter_sizes.frozen_bytes bytes (NULL when 0):
   loraxs: the floats A (r, d_in) then B (d_out, r), float-aligned; mpo: W_res, fp32 (d_out,
   d_in) floats, float-aligned, or the NF4 blob (lort_nf4_size bytes, any alignment).
   layer and matrix name the site of the joint families (cp, tucker); the other families
   ignore them. */
typedef struct lort_adapter {
    lort_kind kind;
    union {
        lort_lora_desc lora;
        lort_loraxs_desc loraxs;
        lort_tt_rep_desc tt_rep;
        lort_tt_adp_desc tt_adp;
        lort_cp_desc cp;
        lort_tucker_desc tucker;
        lort_mpo_desc mpo;
    } desc;
    float *params;
    void *frozen;
    float *grads;
    int layer, matrix;
} lort_adapter;

typedef struct lort_adapter_sizes {
    size_t params;      /* floats in params (and grads) */
    size_t frozen_bytes; /* bytes in frozen (0: the family has none, frozen may be NULL) */
    size_t cache;       /* bytes of cache for n rows */
    size_t work;        /* bytes of workspace for forward/backward/merge/delta at n rows */
    size_t init_work;   /* bytes of workspace for init */
    int d_in, d_out;    /* the adapted matrix */
    int replaces_base;  /* 1: forward computes the whole layer (DoTA / QDoTA: x (W_res + M)^T);
                           skip your own x W0^T, and merge / delta add / give W_res + M */
} lort_adapter_sizes;

LORT_API lort_status lort_adapter_sizes_query(const lort_adapter *a, int n,
                                              lort_adapter_sizes *sizes);
/* W0 (d_out, d_in) is needed by families initialised from the weight (loraxs, mpo); may be
   NULL for the others. For forward and backward, x is the adapter's input: the adapted layer's
   input, except for tt_adp with the output placement, whose input is y0 = y itself (forward:
   x = y or NULL; backward without a cache: x = a copy of y0; see lort_tt_adp_forward). */
LORT_API lort_status lort_adapter_init(const lort_adapter *a, const float *W0, lort_rng *rng,
                                       void *work, size_t work_size);
LORT_API lort_status lort_adapter_forward(const lort_adapter *a, float *y, const float *x, int n,
                                          void *cache, size_t cache_size, void *work,
                                          size_t work_size);
/* dx may be NULL; parameter gradients go to a->grads (NULL skips). */
LORT_API lort_status lort_adapter_backward(const lort_adapter *a, float *dx, const float *dy,
                                           const float *x, int n, const void *cache,
                                           size_t cache_size, void *work, size_t work_size);
LORT_API lort_status lort_adapter_merge(const lort_adapter *a, float *W, float weight,
                                        void *work, size_t work_size);
LORT_API lort_status lort_adapter_delta(const lort_adapter *a, float *dW, void *work,
                                        size_t work_size);
/* What is wrong with a's desc (and, for cp and tucker, its site), in words: returns the
   status the family's size queries return (LORT_ERR_INVALID_ARG for a joint site out of
   range) and writes into msg (msg_size bytes, always NUL-terminated, "" on success) the
   family and the field, e.g. "lora: r = 0, must be > 0", "cp: site layer 6 out of range
   [0, 6)", "mpo: prod of out modes 60 != d_out 64", "tt_rep: A: modes[1] = 0, must be > 0".
   Buffers (params, frozen) are not checked. O(cores), no allocation, no stdio. */
LORT_API lort_status lort_adapter_validate(const lort_adapter *a, char *msg, size_t msg_size);

// >>set =================================================================================== api

/* An adapter set: the adapters of a whole model, by site. A site is one adapted matrix, named
   by the module path it adapts (PEFT's, e.g. "model.layers.3.self_attn.q_proj", or any name of
   the caller's). entries holds one lort_adapter per per-site adapter (lora, loraxs, tt_rep,
   tt_adp, mpo) and ONE per joint block (cp, tucker), however many sites share that block; each
   site points at its entry and, for a joint block, gives its (layer, matrix). The layer and
   matrix fields of the entries themselves are unused. The set only points: entries, sites,
   names and the float buffers are the caller's (or a loader's arena). A site name may be NULL
   in a set built in code (lort_set_find then skips it). */
typedef struct lort_set_site {
    const char *name;    /* the module path, NUL-terminated; NULL = unnamed */
    int entry;           /* index into entries */
    int layer, matrix;   /* cp / tucker: the site inside the shared block; 0 for other kinds */
} lort_set_site;

typedef struct lort_adapter_set {
    lort_adapter *entries;
    int n_entries;
    lort_set_site *sites;
    int n_sites;
} lort_adapter_set;

/* Every site names an entry in range, every entry answers its size queries at one row, joint
   sites are in range of their block, and no two named sites share a name. O(sites^2) in the
   name check: call it once after building or loading a set, not per token. On error, msg (if
   not NULL; msg_size bytes, always NUL-terminated, truncated if short) says what is wrong, e.g.
   "site 4 (model.layers.1.self_attn.q_proj): layer 6 out of range [0, 6)"; on success msg
   holds "". Functions that validate structured input (sets, files, configs) all take this
   trailing (msg, msg_size) pair: no global "last error", no stdio. */
LORT_API lort_status lort_set_validate(const lort_adapter_set *set, char *msg, size_t msg_size);
/* The index of the site called name (exact, case-sensitive), or LORT_ERR_NOT_FOUND (site is
   then left as it was). Linear in the number of sites. */
LORT_API lort_status lort_set_find(const lort_adapter_set *set, const char *name, int *site);
/* The lort_adapter that applies site i: its entry with (layer, matrix) filled in. Every
   lort_adapter_* verb then works on it; joint backward calls for the sites of one block all
   accumulate into that block's one gradient vector. */
LORT_API lort_status lort_set_site_adapter(const lort_adapter_set *set, int site,
                                           lort_adapter *out);

// >>serve ================================================================================= api

/* Serving: whole-model sizes in one query, out-of-place merge, batches whose rows use
   different adapters, and one call for the sites that read the same input.

   ---- plan: the sizes of a whole set at n rows ----
   One block of floats can hold every entry's params (and another the grads, a byte block the
   frozen data): entry e's params start params_offset floats into it, its frozen data
   frozen_offset bytes into the other. Offsets are multiples of 64 bytes, so with 64-byte
   aligned blocks every entry is 64-byte aligned. cache and work
   are maxima over every site and verb (forward, backward, merge, delta, init) at n rows, so one
   cache buffer and one workspace serve every call of the model. */
typedef struct lort_set_plan {
    size_t params;        /* floats of the params block (also the grads block) */
    size_t frozen_bytes;  /* bytes of the frozen block */
    size_t cache;         /* bytes: the largest cache of any site at n rows */
    size_t work;          /* bytes: the largest workspace of any site and verb at n rows */
    int max_d_in, max_d_out;
} lort_set_plan;
typedef struct lort_set_plan_entry {
    size_t params_offset, params;   /* floats: where entry e starts in the params block, count */
    size_t frozen_offset, frozen_bytes;   /* bytes: the same in the frozen block */
} lort_set_plan_entry;
/* entries (n_entries, may be NULL) and sites (n_sites, may be NULL) receive the per-entry
   offsets and the per-site sizes (lort_adapter_sizes_query of each site's adapter at n). The
   set must pass lort_set_validate. */
LORT_API lort_status lort_set_plan_query(const lort_adapter_set *set, int n, lort_set_plan *plan,
                                         lort_set_plan_entry *entries, lort_adapter_sizes *sites);
/* Points every entry into the blocks: params = params_block + params_offset, likewise frozen
   (NULL when the entry has none) and grads (grads_block NULL: grads = NULL). */
LORT_API lort_status lort_set_bind(lort_adapter_set *set, const lort_set_plan_entry *entries,
                                   float *params_block, void *frozen_block, float *grads_block);

/* ---- out-of-place merge, for base weights in read-only mappings ----
   W_out (d_out, d_in) = W_in + weight * dW: bit-identical to copying W_in to W_out, then
   lort_adapter_merge. W_out may equal W_in (in place); any other overlap is refused. work as
   lort_adapter_merge (lort_adapter_sizes_query's work at any n >= 1). On error W_out is
   untouched.
   Hot swap: adapters are plain data and no kernel keeps state between calls, so switching the
   adapter of a site between two calls (another lort_adapter, or new values in params) needs no
   re-initialisation; the cache of one adapter is meaningless to another. Merge then unmerge
   (weight +1, then -1) is not bit-exact: W' = fl(fl(W + D) - D). Each entry comes back within
   1 ulp of W where |D| <= |W|, and within half an ulp of W + D otherwise; repeating the pair
   does not drift further (tests/test_serve.c checks both over 1,000 rounds). To restore W
   exactly, keep W (or merge out of place from the read-only original). */
LORT_API lort_status lort_adapter_merge_into(const lort_adapter *a, float *W_out,
                                             const float *W_in, float weight, void *work,
                                             size_t work_size);

/* ---- mixed-adapter batches (Punica's SGMV on the CPU) ----
   Row i of the batch uses adapters[row_adapter[i]], or no adapter when row_adapter[i] = -1:
       y[i] += adapter_{row_adapter[i]}(x[i])     (tt_adp OUTPUT: y[i] = y[i] + f(y[i]))
   for any mix of families that share d_in and d_out. A counting sort in the workspace groups
   the rows per adapter (no allocation); each group runs as one call of its family on the
   group's rows (gathered, then scattered back; a group of consecutive rows runs in place).
   Shared-basis LoRA-XS: consecutive adapters (by index) of kind loraxs with the same frozen
   pointer, shape and no dropout share one H1 = x A^T GEMM over all their rows, a per-row
   r x r product with each row's own R, and one GEMM with B: cost flat in the number of users.
   Inference: no cache; dropout masks (p > 0) number rows within each group. DoTA adapters
   (replaces_base) add x (W_res + M)^T to their rows, exactly as lort_adapter_forward. Output
   equals each row's adapter applied alone, up to float rounding. On error y is untouched. */
LORT_API lort_status lort_mixed_workspace_size(const lort_adapter *adapters, int n_adapters,
                                               int n, size_t *bytes);
LORT_API lort_status lort_mixed_forward(const lort_adapter *adapters, int n_adapters, float *y,
                                        const float *x, const int *row_adapter, int n,
                                        void *work, size_t work_size);

/* ---- one call for the sites that read the same input (q, k, v; gate, up) ----
   y[i] (n, d_out_i) += adapters[i](x) for i < count, all with the same d_in. lora sites run as
   one GEMM x [A_0; A_1; ...]^T (the A factors stacked in the workspace) followed by one GEMM
   per site with its B; cp and tucker sites of one block (same params) with heads on the
   output compute their shared U = drop(x) A once. Other families: one call each. Backward
   likewise: dx += the sum over sites (one stacked GEMM for lora), parameter gradients to each
   adapter's grads. Equal to the per-site calls up to float rounding. lora sites are stacked
   from n = 64 rows; below, stacking would copy more bytes than it saves, and lora sites run one
   by one (at decode sizes the fused loops, with no per-site call). */
LORT_API lort_status lort_multi_workspace_size(const lort_adapter *adapters, int count, int n,
                                               size_t *bytes);
LORT_API lort_status lort_multi_forward(const lort_adapter *adapters, int count, float *const *y,
                                        const float *x, int n, void *work, size_t work_size);
/* dx (n, d_in) += sum_i J_i^T dy[i] (NULL skips); each adapter's grads accumulate. No cache:
   the shared products are recomputed. */
LORT_API lort_status lort_multi_backward(const lort_adapter *adapters, int count, float *dx,
                                         const float *const *dy, const float *x, int n,
                                         void *work, size_t work_size);

// >>export ================================================================================ api

/* Export to LoRA, for engines that only read LoRA: any linear adapter (lora re-ranked,
   loraxs, tt_rep, cp and tucker per site, mpo) becomes a lora adapter of rank
   min(r, d_in, d_out) by a truncated SVD of its dW, the Eckart-Young optimum at that rank.
   The families that are already a product dW = s P Q with k = rank(P) <= min(d_in,
   d_out) columns (lora, loraxs, tt_rep, cp, tucker) are factored without forming dW: thin QR
   of P and Q^T, exact SVD of the k x k core (O((d_in + d_out) k^2)); mpo (and a lora with
   r > min(d_in, d_out)) materialises dW and takes lort_svd_truncated (opts; NULL = default).
   Exact (to fp32 rounding) when r >= k: loraxs at r, tt_rep at r, cp at r, tucker at r1.
   tt_adp is not linear (LORT_ERR_NOT_MERGEABLE).

   W0, the base weight (d_out, d_in), is read only for mpo WITH a residual (DoTA, QDoTA; NULL
   is accepted and ignored for every other adapter). Such an adapter replaces the base layer
   (y = x (M + W_res)^T), so its update relative to the base is dW = M + W_res - W0, and that
   is what is exported: an engine running y = x W0^T + x dW_r^T with the exported LoRA gets
   the DoTA layer back up to the truncation. dW is summed in double from the fp32 M, W_res
   (an NF4 residual dequantised exactly as forward does) and W0, rounded once to fp32. With
   an NF4 residual dW includes its quantisation error deq(NF4(R)) - R (R the fp32 residual it
   was made from), which is full-rank: the export is then not exact at any rank below
   min(d_in, d_out) (rel_err says by how much; at init dW is that error alone). With an
   F32 residual dW at init is fp32 rounding noise (|dW| of the order of 1e-7 max |W0|). W0
   must be the weight the residual was made from (lort_mpo_init's W0); a NULL W0 for such an
   adapter is LORT_ERR_NULL (the size query does not need it).

   The result: desc {d_in, d_out, r, alpha = r, rslora 0}, so s = 1 and s B A = dW_r; params
   = A (r, d_in) then B (d_out, r), with B = U sqrt(S) and A = sqrt(S) V^T (balanced, which
   keeps both in fp16 range). For an rsLoRA desc with the same numbers set rslora = 1 and
   alpha = sqrt(r); in GGUF (llama.cpp: scale = alpha / r) alpha = r gives the same s = 1.
   rel_err (optional) = ||dW - B A||_F / ||dW||_F (0 for dW = 0): on the thin route from the
   discarded singular values, sqrt(sum_{i >= r} S_i^2 / sum S_i^2); on the dense route
   measured on the residual. */
#if LORT__HAS_SVD
/* lora: the output desc (its param count: lort_lora_param_count); work_bytes: workspace. */
LORT_API lort_status lort_adapter_to_lora_size(const lort_adapter *a, int r,
                                               const lort_svd_opts *opts, lort_lora_desc *lora,
                                               size_t *work_bytes);
LORT_API lort_status lort_adapter_to_lora(const lort_adapter *a, lort_lora_desc *lora,
                                          float *params, float *rel_err, const float *W0, int r,
                                          const lort_svd_opts *opts, void *work,
                                          size_t work_size);
/* A whole set: every site of any family becomes its own lora entry (site i -> entry i, same
   names; cp / tucker blocks split into their sites). param_floats = sum of r_i (d_in + d_out)
   over the sites, work_bytes = the largest site's workspace. lort_set_to_lora fills entries
   (n_sites), sites (n_sites; names point to set's), params (consecutive per site) and
   rel_err (n_sites, optional), then out = {entries, n_sites, sites, n_sites}. W0: NULL when
   no site is an mpo with a residual; else an array of n_sites const float * (C does not
   convert a float ** to it): W0[i] is the base weight (d_out, d_in) of site i, read for
   those sites only (the others' may be NULL) and only during the call. The set is
   validated first; errors name the site in msg (e.g. "site 2 (h.0.adp): tt_adp: not
   linear, no weight delta to export"). On an error out is untouched; one found while
   exporting site i (a non-finite dW) may leave sites < i written. */
LORT_API lort_status lort_set_to_lora_size(const lort_adapter_set *set, int r,
                                           const lort_svd_opts *opts, size_t *param_floats,
                                           size_t *work_bytes, char *msg, size_t msg_size);
LORT_API lort_status lort_set_to_lora(const lort_adapter_set *set, lort_adapter_set *out,
                                      lort_adapter *entries, lort_set_site *sites,
                                      float *params, size_t param_floats, float *rel_err,
                                      const float *const *W0, int r, const lort_svd_opts *opts,
                                      void *work, size_t work_size, char *msg, size_t msg_size);
#endif /* LORT__HAS_SVD */

// >>gguf ================================================================================== api

/* GGUF (v3, little-endian), as llama.cpp reads a LoRA adapter: KV general.architecture
   (the base model's, e.g. "llama"), general.type = "adapter", adapter.type = "lora",
   adapter.lora.alpha (F32); per adapted base tensor two tensors "<base>.lora_a" with ne
   {d_in, r} and "<base>.lora_b" with ne {r, d_out} (ne is fastest-first: the bytes are
   PEFT's A (r, d_in) and B (d_out, r) row-major, no transpose); data aligned to 32 bytes.
   llama.cpp applies y += scale (x A^T) B^T with scale = user_scale * alpha / r, r read from
   each lora_b, so one alpha serves every rank: the writer stores alpha = s_0 r_0 (the first
   site's scale times its rank; rsLoRA folded in, since s already holds it) and, for a site i
   whose s_i r_i differs, multiplies its B by s_i r_i / alpha. An exported set (alpha = r,
   s = 1) gets alpha = r and bit-exact tensors. Base names: the caller's, or for LLaMA module
   paths lort_gguf_llama_name. Token embeddings (A and B swapped in llama.cpp) and the q/k
   RoPE row permutation llama.cpp's converter applies to B are not done here: map such sites
   yourself (permute B's rows as your converter permutes the weight's). */
#define LORT_GGUF_ALIGNMENT 32
/* ggml tensor types written (F32, F16) and read (these and the others the reader sizes) */
enum { LORT_GGML_F32 = 0, LORT_GGML_F16 = 1, LORT_GGML_Q4_0 = 2, LORT_GGML_Q8_0 = 8,
       LORT_GGML_I8 = 24, LORT_GGML_I16 = 25, LORT_GGML_I32 = 26, LORT_GGML_I64 = 27,
       LORT_GGML_F64 = 28, LORT_GGML_BF16 = 30 };
/* GGUF value types */
enum { LORT_GGUF_UINT8 = 0, LORT_GGUF_INT8 = 1, LORT_GGUF_UINT16 = 2, LORT_GGUF_INT16 = 3,
       LORT_GGUF_UINT32 = 4, LORT_GGUF_INT32 = 5, LORT_GGUF_FLOAT32 = 6, LORT_GGUF_BOOL = 7,
       LORT_GGUF_STRING = 8, LORT_GGUF_ARRAY = 9, LORT_GGUF_UINT64 = 10, LORT_GGUF_INT64 = 11,
       LORT_GGUF_FLOAT64 = 12 };

typedef struct lort_gguf_lora_opts {
    const char *architecture;        /* general.architecture; NULL = "llama" */
    const char *name;                /* general.name; NULL = none */
    const char *const *base_names;   /* NULL, or one per site: the GGUF base tensor name, e.g.
                                        "blk.0.attn_q.weight"; a NULL entry = lort_gguf_llama_name
                                        of the site's name */
    int f16;                         /* nonzero: F16 tensors (round to nearest even), else F32 */
} lort_gguf_lora_opts;

/* LLaMA's module paths to GGUF names (an optional "base_model.model." prefix is dropped):
   model.layers.N.self_attn.{q,k,v,o}_proj -> blk.N.attn_{q,k,v,output}.weight,
   model.layers.N.mlp.{gate,up,down}_proj -> blk.N.ffn_{gate,up,down}.weight.
   LORT_ERR_NOT_FOUND for any other name; out (out_size bytes) too short: LORT_ERR_INVALID_ARG. */
LORT_API lort_status lort_gguf_llama_name(char *out, size_t out_size, const char *site);
#if LORT__HAS_LORA
/* Bytes of the file for a set of lora entries (export other families with lort_set_to_lora
   first); validates the set, the names (each < 64 bytes with the suffix, no two sites on one
   base tensor) and the values' finiteness of alpha. opts NULL = defaults. */
LORT_API lort_status lort_gguf_lora_size(const lort_adapter_set *set,
                                         const lort_gguf_lora_opts *opts, size_t *bytes,
                                         char *msg, size_t msg_size);
/* The file into buf (buf_size >= lort_gguf_lora_size's bytes); *written = its size. */
LORT_API lort_status lort_gguf_lora_write(void *buf, size_t buf_size, size_t *written,
                                          const lort_adapter_set *set,
                                          const lort_gguf_lora_opts *opts, char *msg,
                                          size_t msg_size);
#ifndef LORT_NO_STDIO
/* lort_gguf_lora_size + write into a buffer from `allocator` (NULL = LORT_MALLOC) + fwrite. */
LORT_API lort_status lort_gguf_lora_write_file(const char *path, const lort_adapter_set *set,
                                               const lort_gguf_lora_opts *opts,
                                               const lort_allocator *allocator, char *msg,
                                               size_t msg_size);
#endif
#endif /* LORT__HAS_LORA */

/* ---- a strict GGUF reader of a caller buffer: header, KV pairs and tensor infos as views
   into the buffer (no copy, no allocation). Checked: magic, version 2 or 3, every length and
   count against the bytes left, value and array element types (no nested arrays), bool 0/1,
   keys and tensor names non-empty and unique, tensor names < 64 bytes, 1..4 dims, ne within
   int64, known ggml types with ne[0] a multiple of the block, general.alignment a u32 power
   of two, tensor offsets exactly consecutive (each the previous end rounded up to the
   alignment, as llama.cpp requires) and all data inside the buffer (the padding after the
   last tensor may be missing, as in files of the gguf Python writer). Malformed input:
   LORT_ERR_FORMAT (unknown tensor type: LORT_ERR_UNSUPPORTED) with msg naming the place.
   Duplicate keys and names are found among the entries stored: give arrays of n_kv and
   n_tensors (a first call with max 0 gives the counts) for the full check. */
typedef struct lort_gguf_kv {
    const char *key;       /* not NUL-terminated */
    size_t key_len;
    uint32_t type;         /* LORT_GGUF_*; for ARRAY, elem_type is the element type */
    uint32_t elem_type;
    uint64_t count;        /* array length; 1 otherwise */
    const void *data;      /* the value: scalars little-endian; a STRING's bytes (data_size =
                              its length); an ARRAY's elements (strings with their u64 lengths) */
    size_t data_size;
} lort_gguf_kv;
typedef struct lort_gguf_tensor {
    const char *name;      /* not NUL-terminated */
    size_t name_len;
    uint32_t n_dims;
    uint64_t ne[4];        /* fastest first; ne[i] = 1 for i >= n_dims */
    uint32_t type;         /* LORT_GGML_* */
    uint64_t offset;       /* from the data section */
    const void *data;      /* inside the buffer */
    size_t bytes;
} lort_gguf_tensor;
typedef struct lort_gguf_info {
    uint32_t version;
    uint64_t n_kv, n_tensors;
    uint32_t alignment;
    size_t data_offset;    /* start of the data section in the buffer */
} lort_gguf_info;
/* Parses buf; stores the first min(max_kvs, n_kv) KV pairs and min(max_tensors, n_tensors)
   tensor infos (kvs / tensors may be NULL with max 0: a size query: info has the counts). */
LORT_API lort_status lort_gguf_read(lort_gguf_info *info, lort_gguf_kv *kvs, size_t max_kvs,
                                    lort_gguf_tensor *tensors, size_t max_tensors,
                                    const void *buf, size_t size, char *msg, size_t msg_size);
/* The index of the KV whose key is `key`, or LORT_ERR_NOT_FOUND. */
LORT_API lort_status lort_gguf_find_kv(const lort_gguf_kv *kvs, size_t n, const char *key,
                                       size_t *index);

// >>blocks ================================================================================ api

/* The flat layout of every family, as data: one lort_block per named piece of params or frozen
   (the same pieces the family comments describe). The set file (lort_set_save) writes one tensor
   per block, and a user who wants the B factor of a lora, core 2 of an mpo or C_L of a cp reads
   its offset and shape here instead of re-deriving them:
       lora     A (r, d_in), B (d_out, r)                                          params
       loraxs   R (r, r) params; A (r, d_in), B (d_out, r)                         frozen
       tt_rep   A.core<k> (t_{k-1}, n_k, t_k) k = 0..d-1 of W_A, then B.core<k> of W_B
       tt_adp   down.core<k>, up.core<k>, beta_d (b), beta_u (hidden)
       cp       A (d, r), B (r, d_h), C_H (H, r), C_L (L, r), C_M (M, r)
       tucker   core (r1, r2, rH, rL, rM), A (d, r1), B (r2, d_h), C_H, C_L, C_M
       mpo      core<k> (D_{k-1}, i_k, j_k, D_k) params; W_res (d_out, d_in) frozen (F32) or
                W_res_nf4 (bytes) frozen, the NF4 blob of lort_nf4_size bytes (U8)
   Blocks of one vector are listed in offset order and tile it exactly. */
#define LORT_BLOCK_MAX_DIMS 5
typedef enum lort_block_vector { LORT_BLOCK_PARAMS = 0, LORT_BLOCK_FROZEN = 1 } lort_block_vector;
typedef struct lort_block {
    char name[16];                    /* "A", "core2", "down.core0", "W_res", ... */
    int vector;                       /* lort_block_vector: params or frozen */
    int bytes_only;                   /* 1: raw bytes (the NF4 blob), not floats */
    size_t offset;                    /* floats from the start of that vector (bytes_only: 0) */
    size_t count;                     /* floats (bytes when bytes_only: the whole frozen) */
    int ndim;
    int shape[LORT_BLOCK_MAX_DIMS];   /* row-major */
} lort_block;
/* out[0..cap) = the blocks of a's family (out may be NULL with cap 0 to ask the count);
   *count = how many there are. cap < *count is LORT_ERR_WORKSPACE (out untouched). At most
   2 LORT_TT_MAX_CORES + 2 blocks. */
LORT_API lort_status lort_adapter_blocks(const lort_adapter *a, lort_block *out, int cap,
                                         int *count);

// >>st ==================================================================================== api

/* safetensors (HuggingFace's format): u64 little-endian header length N, N bytes of JSON
   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
   "__metadata__": {"key": "value", ...}} (right-padded with spaces), then the data bytes,
   row-major little-endian, every byte owned by exactly one tensor.

   The reader checks everything the reference implementation checks, and says what is wrong in
   (msg, msg_size): header length <= LORT_ST_MAX_HEADER and inside the buffer, the header is
   one JSON object (strict JSON: no trailing commas, no duplicate keys, valid escapes and UTF-8,
   nesting <= 64), each tensor has exactly dtype, shape and data_offsets, shape entries and
   offsets are integers, end - begin = dtype size x product(shape) (overflow-checked), the
   tensors tile the data section with no gap or overlap, and the data section ends exactly at
   the end of the buffer; __metadata__ values are strings. Dtypes read: F32, F16, BF16 (as
   floats) and U8 (raw bytes); the reference's other dtypes (I64, F8_*, F4, ...) are size-checked
   and listed as LORT_DTYPE_OTHER (lort_st_get_f32 refuses them); unknown ones are a format error
   naming the tensor. Malformed input is
   LORT_ERR_FORMAT. Nothing is allocated: the index goes into a caller arena whose size
   lort_st_read_size gives (it grows with the header, never with the data). */
#define LORT_ST_MAX_HEADER 100000000u
#define LORT_ST_MAX_DIMS 8
typedef enum lort_dtype {
    LORT_DTYPE_F32 = 0,
    LORT_DTYPE_F16 = 1,
    LORT_DTYPE_BF16 = 2,
    LORT_DTYPE_U8 = 3,     /* raw bytes (an NF4 blob) */
    LORT_DTYPE_OTHER = 4   /* any other safetensors dtype: size-checked when read, not converted */
} lort_dtype;

typedef struct lort_st_tensor {
    const char *name;                 /* NUL-terminated, JSON escapes decoded (in the arena) */
    int dtype;                        /* lort_dtype */
    int ndim;                         /* 0 (a scalar) .. LORT_ST_MAX_DIMS */
    int64_t shape[LORT_ST_MAX_DIMS];
    size_t count;                     /* product of shape (1 for a scalar) */
    const void *data;                 /* into the caller's buffer */
    size_t nbytes;
} lort_st_tensor;
typedef struct lort_st_meta {
    const char *key, *value;          /* NUL-terminated, in the arena */
} lort_st_meta;
typedef struct lort_st_file {
    lort_st_tensor *tensors;          /* in header order */
    int n_tensors;
    lort_st_meta *meta;
    int n_meta;
} lort_st_file;

/* Bytes of arena lort_st_read needs for this buffer (validates the header). */
LORT_API lort_status lort_st_read_size(const void *buf, size_t size, size_t *arena_bytes,
                                       char *msg, size_t msg_size);
/* Parses and validates buf (size bytes; it must outlive the file: tensors point into it). */
LORT_API lort_status lort_st_read(const void *buf, size_t size, void *arena, size_t arena_size,
                                  lort_st_file *file, char *msg, size_t msg_size);
/* The tensor called name, or LORT_ERR_NOT_FOUND. Linear in the tensors. */
LORT_API lort_status lort_st_find(const lort_st_file *file, const char *name,
                                  const lort_st_tensor **tensor);
/* A view of an F32 tensor whose data is 4-byte aligned, on a little-endian host (mmap the file
   and the 8-byte-aligned data of lortensor's and HF's writers qualify); NULL otherwise. */
LORT_API const float *lort_st_view_f32(const lort_st_tensor *t);
/* out[0..count) = the tensor as floats (F32 copied, F16 and BF16 widened exactly); count must
   equal t->count (else LORT_ERR_SHAPE); U8 is LORT_ERR_UNSUPPORTED. */
LORT_API lort_status lort_st_get_f32(const lort_st_tensor *t, float *out, size_t count);

/* The writer's input: a tensor of floats (or bytes for U8) with its shape. dtype is what is
   written: F32 (0, the default: bytes as they are), F16 or BF16 (rounded to nearest even; F16
   overflows to Inf as a cast would), or U8 (data is `count` raw bytes). */
typedef struct lort_st_write_tensor {
    const char *name;
    int dtype;
    int ndim;
    int64_t shape[LORT_ST_MAX_DIMS];
    const void *data;
} lort_st_write_tensor;
/* Bytes of the file; names must be distinct and non-empty, "__metadata__" is reserved. */
LORT_API lort_status lort_st_write_size(const lort_st_write_tensor *tensors, int n_tensors,
                                        const lort_st_meta *meta, int n_meta, size_t *bytes,
                                        char *msg, size_t msg_size);
/* Writes the file into buf: tensors in the given order, header padded with spaces so the data
   starts 8-byte aligned. *written = bytes written (equal to the size query). */
LORT_API lort_status lort_st_write(void *buf, size_t buf_size,
                                   const lort_st_write_tensor *tensors, int n_tensors,
                                   const lort_st_meta *meta, int n_meta, size_t *written,
                                   char *msg, size_t msg_size);

#ifndef LORT_NO_STDIO
/* stdio helpers (compiled out by LORT_NO_STDIO). lort_file_read: *data = the whole file in a
   block from the allocator (NULL = malloc), *size its length; free it with lort_free.
   A missing file is LORT_ERR_NOT_FOUND; lort_file_write writes size bytes. */
LORT_API lort_status lort_file_read(const char *path, const lort_allocator *allocator,
                                    void **data, size_t *size);
LORT_API lort_status lort_file_write(const char *path, const void *data, size_t size);
#endif

// >>files ================================================================================= api

/* ---- every family in one file --------------------------------------------------------------
   lort_set_save writes a whole adapter set (any mix of families) as one safetensors file: one
   F32 tensor per block (lort_adapter_blocks) named "<entry>.<block>", e.g. "0.A", "3.core2",
   "5.W_res_nf4" (U8); the __metadata__ holds "lortensor.format" = "1", "lortensor.entries" =
   the number of entries, "lortensor.entry.<i>" = the kind and every desc field as
   "key=value" words (floats as their IEEE bits in hex, so the round trip is bit-exact), and
   "lortensor.sites" = one line per site: "entry layer matrix name". grads are not saved.
   lort_set_load copies everything into a caller arena (size from lort_set_load_size): the set,
   its entries (params and frozen filled, grads NULL), sites and names; forward, backward
   (give entries[i].grads a buffer for parameter gradients), merge and delta work on it as is. */
LORT_API lort_status lort_set_save_size(const lort_adapter_set *set, size_t *bytes, char *msg,
                                        size_t msg_size);
LORT_API lort_status lort_set_save(const lort_adapter_set *set, void *buf, size_t buf_size,
                                   size_t *written, char *msg, size_t msg_size);
LORT_API lort_status lort_set_load_size(const void *buf, size_t size, size_t *arena_bytes,
                                        char *msg, size_t msg_size);
LORT_API lort_status lort_set_load(const void *buf, size_t size, void *arena, size_t arena_size,
                                   lort_adapter_set *set, char *msg, size_t msg_size);

/* ---- PEFT LoRA ------------------------------------------------------------------------------
   Loads HuggingFace PEFT's adapter_model.safetensors + adapter_config.json into a set of lora
   entries, one site per adapted module. Site names are PEFT's module paths with the wrapper
   prefix "base_model.model." removed (the name of the module in the base model, as
   model.named_modules() gives it: "model.layers.3.self_attn.q_proj"); keys without that prefix
   are taken as they are. Per site: r = the rows of lora_A.weight, which must equal the rank
   rank_pattern gives (else LORT_ERR_SHAPE with the key and both shapes); alpha from
   alpha_pattern or lora_alpha; rslora = use_rslora. Pattern keys match as PEFT's
   get_pattern_key: the first key K (in file order) for which the whole name matches the regex
   (.*\.)?(K)$ (supported regex: literals, ., [] classes, \d \w \s escapes, * + ? {m,n},
   groups, |, ^ and $; anything else is LORT_ERR_UNSUPPORTED). A target_modules list must
   contain each site's last name component or be a regex matching its whole name (PEFT's rule);
   "all-linear" accepts any. Refused with a status and message: use_dora or magnitude vectors,
   lora_bias or a lora_B.bias, bias other than "none", embedding LoRA, modules_to_save tensors,
   any other key, peft_type other than LORA, an A without its B. Tensors may be F32, F16 or BF16.
   Not applied to the set: lora_dropout (in info; desc dropout is 0, for inference) and
   fan_in_fan_out (in info: the base weight of that module is stored (d_in, d_out) as GPT-2's
   Conv1D; forward is unaffected, but merge and delta give (d_out, d_in): merge into W^T).

   RoPE row order: HF checkpoints of LLaMA-type models permute the rows of q_proj and k_proj
   (the interleaved-pair rotary layout) relative to llama.cpp's GGUF and llama2.c's exports, which
   undo it. An engine holding W_q in that converted order applies the same row permutation to
   B's rows (d_out = heads * head_dim): lort_rope_permute_rows does it in place (as
   llama.cpp's convert script does to lora_B). */
typedef struct lort_peft_info {
    int r;                 /* the config's default rank and alpha */
    float lora_alpha;
    int use_rslora;
    int fan_in_fan_out;    /* 1: the base weights are Conv1D (d_in, d_out): merge into W^T */
    float lora_dropout;    /* PEFT's training dropout (not set in the descs) */
    int dtype;             /* lort_dtype of the first tensor */
} lort_peft_info;
LORT_API lort_status lort_peft_load_size(const void *st, size_t st_size, const char *config,
                                         size_t config_size, size_t *arena_bytes, char *msg,
                                         size_t msg_size);
/* set (and info, may be NULL) from the two files' bytes; the set's memory is the arena's. */
LORT_API lort_status lort_peft_load(const void *st, size_t st_size, const char *config,
                                    size_t config_size, void *arena, size_t arena_size,
                                    lort_adapter_set *set, lort_peft_info *info, char *msg,
                                    size_t msg_size);
/* A set whose every site is a named lora entry, as PEFT files: keys
   "base_model.model.<site>.lora_A.weight" / ".lora_B.weight" in dtype (F32, F16, BF16), and a
   config with peft_type LORA, r and lora_alpha of the first site, use_rslora (all sites must
   agree), target_modules (the distinct last name components), and rank_pattern /
   alpha_pattern entries (the site's full name, dots escaped) for the sites that differ, so
   PEFT's from_pretrained rebuilds every rank and scale. fan_in_fan_out is written as given.
   Sizes: *st_bytes and *config_bytes (config text without a NUL). */
LORT_API lort_status lort_peft_save_size(const lort_adapter_set *set, int dtype,
                                         int fan_in_fan_out, size_t *st_bytes,
                                         size_t *config_bytes, char *msg, size_t msg_size);
LORT_API lort_status lort_peft_save(const lort_adapter_set *set, int dtype, int fan_in_fan_out,
                                    void *st, size_t st_size, char *config, size_t config_size,
                                    char *msg, size_t msg_size);
/* rows (heads * head_dim, cols) of B, in place, from HF's order to llama.cpp's/llama2.c's:
   within each head, row i of the first half and row i of the second half become rows 2i and
   2i + 1 (the inverse of HF's conversion permute). inverse != 0 goes back. Use it on lora_B of
   q_proj (heads) and k_proj (kv heads) when your engine's W_q/W_k came from GGUF or llama2.c.
   work: cols * head_dim floats. */
LORT_API lort_status lort_rope_permute_rows(float *B, int heads, int head_dim, int cols,
                                            int inverse, float *work, size_t work_count);

// >>adamw ================================================================================= api

typedef struct lort_adamw_desc {
    float lr, beta1, beta2, eps, weight_decay;   /* all literal; see lort_adamw_default */
} lort_adamw_desc;
/* torch.optim.AdamW defaults: beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01. */
LORT_API lort_adamw_desc lort_adamw_default(float lr);
/* One step t >= 1 (1 on the first call) over count values; m and v (zero at t = 1) are the
   caller's state, same length. Hyper-parameters whose step lr / (1 - beta1^t) or decay
   1 - lr weight_decay overflow: LORT_ERR_INVALID_ARG. A non-finite gradient, or a new params,
   m or v entry that would overflow: LORT_ERR_NONFINITE, with nothing written. */
LORT_API lort_status lort_adamw_step(const lort_adamw_desc *opt, float *params, float *m,
                                     float *v, const float *grads, size_t count, long t);

#ifdef __cplusplus
}
#endif
#endif /* LORTENSOR_H */

/* ============================================================================================
   IMPLEMENTATION
   ============================================================================================ */
#ifdef LORTENSOR_IMPLEMENTATION
#ifndef LORTENSOR_IMPLEMENTATION_INCLUDED
#define LORTENSOR_IMPLEMENTATION_INCLUDED

// >>config =============================================================================== impl

#include <string.h>
#include <math.h>
#include <limits.h>
#include <float.h>

#ifndef LORT_ASSERT
#ifdef LORT_DEBUG
#include <assert.h>
#define LORT_ASSERT(x) assert(x)
#else
#define LORT_ASSERT(x) ((void)0)
#endif
#endif

#if defined(LORT_MALLOC) != defined(LORT_FREE)
#error "lortensor.h: define both LORT_MALLOC and LORT_FREE, or neither"
#endif
#ifndef LORT_MALLOC
#include <stdlib.h>
#define LORT_MALLOC(sz, u) ((void)(u), malloc(sz))
#define LORT_FREE(p, u) ((void)(u), free(p))
#endif

#if !defined(LORT_NO_BLAS) && !defined(LORT_SGEMM)
#ifdef LORT_CBLAS_HEADER
#include LORT_CBLAS_HEADER
#else
#include <cblas.h>
#endif
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LORT__PRIVATE static __attribute__((unused))
#else
#define LORT__PRIVATE static
#endif
#if defined(LORT_STATIC) && (defined(__GNUC__) || defined(__clang__))
#define LORT_DEF static __attribute__((unused))
#else
#define LORT_DEF LORT_API
#endif

/* Blocking of the built-in GEMM (see CONFIGURATION): a KC x NC panel of B and an MR x KC
   strip of A live on the stack, 4 (KC NC + MR KC) bytes (67 KiB by default). */
#ifndef LORT_GEMM_KC
#define LORT_GEMM_KC 128
#endif
#ifndef LORT_GEMM_NC
#define LORT_GEMM_NC 128
#endif
#if defined(__SSE2__) || defined(__ARM_NEON) || defined(__aarch64__) || defined(__ALTIVEC__) || \
    defined(__wasm_simd128__) || defined(_M_X64)
#define LORT__GEMM_SIMD 1 /* a vector unit: the 6 x 16 tile in vectors; else a 4 x 4 scalar tile */
#endif
#ifndef LORT_GEMM_MR
#ifdef LORT__GEMM_SIMD
#define LORT_GEMM_MR 6
#else
#define LORT_GEMM_MR 4
#endif
#endif
#ifndef LORT_GEMM_NR
#ifdef LORT__GEMM_SIMD
#define LORT_GEMM_NR 16
#else
#define LORT_GEMM_NR 4
#endif
#endif
#if LORT_GEMM_KC < 1 || LORT_GEMM_MR < 1 || LORT_GEMM_NR < 1 || LORT_GEMM_NC < LORT_GEMM_NR || \
    LORT_GEMM_NC % LORT_GEMM_NR != 0
#error "lortensor.h: need LORT_GEMM_KC, _MR, _NR >= 1 and LORT_GEMM_NC a multiple of LORT_GEMM_NR"
#endif

#define LORT__ALIGN 64u
#define LORT__SIZE_LIMIT ((size_t)PTRDIFF_MAX)
#define LORT__MAX_SLOTS 16

// >>core ================================================================================= impl

LORT_DEF const char *lort_status_string(lort_status status) {
    switch (status) {
#define LORT__STATUS_CASE(name, value, msg) \
    case name:                              \
        return msg;
        LORT__STATUS_LIST(LORT__STATUS_CASE)
#undef LORT__STATUS_CASE
    default:
        return "unknown status";
    }
}

LORT_DEF void lort_version(int *major, int *minor, int *patch) {
    if (major) *major = LORT_VERSION_MAJOR;
    if (minor) *minor = LORT_VERSION_MINOR;
    if (patch) *patch = LORT_VERSION_PATCH;
}
LORT_DEF const char *lort_version_string(void) { return LORT_VERSION_STRING; }

LORT_DEF const char *lort_gemm_backend(void) {
#if defined(LORT_SGEMM)
    return "custom";
#elif defined(LORT_NO_BLAS)
    return "builtin";
#else
    return "cblas";
#endif
}

LORT_DEF lort_status lort_alloc(const lort_allocator *allocator, size_t bytes, void **out) {
    void *p;
    if (!out) return LORT_ERR_NULL;
    *out = NULL;
    if (bytes == 0) return LORT_ERR_INVALID_ARG;
    if (bytes > LORT__SIZE_LIMIT) return LORT_ERR_OVERFLOW;
    if (allocator && allocator->alloc) p = allocator->alloc(bytes, allocator->user);
    else p = LORT_MALLOC(bytes, allocator ? allocator->user : NULL);
    if (!p) return LORT_ERR_OUT_OF_MEMORY;
    *out = p;
    return LORT_OK;
}

LORT_DEF void lort_free(const lort_allocator *allocator, void *ptr) {
    if (!ptr) return;
    if (allocator && allocator->free) allocator->free(ptr, allocator->user);
    else LORT_FREE(ptr, allocator ? allocator->user : NULL);
}

LORT_DEF void lort_zero(float *x, size_t count) {
    if (x && count) memset(x, 0, count * sizeof(float));
}

/* ---- checked sizes and the layout shared by every size query and kernel ------------------ */

LORT__PRIVATE int lort__mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > LORT__SIZE_LIMIT / a) return 0;
    *out = a * b;
    return 1;
}
/* product of dims > 0 into *out; 0 on overflow */
LORT__PRIVATE int lort__mul3(size_t a, size_t b, size_t c, size_t *out) {
    size_t t;
    return lort__mul(a, b, &t) && lort__mul(t, c, out);
}

/* *c += a b; 0 on overflow. */
LORT__PRIVATE int lort__add_mul(size_t *c, size_t a, size_t b) {
    size_t t;
    if (!lort__mul(a, b, &t) || t > LORT__SIZE_LIMIT - *c) return 0;
    *c += t;
    return 1;
}
/* A layout is a list of 64-byte aligned float slots carved from one buffer. Size queries and
   kernels build the same layout from the same function, so they cannot drift. */
typedef struct lort__layout {
    size_t off[LORT__MAX_SLOTS]; /* byte offset of each slot from the aligned base */
    size_t end;                  /* bytes used from the aligned base */
    int count;
    int overflow;
} lort__layout;

LORT__PRIVATE void lort__lay_init(lort__layout *L) {
    memset(L, 0, sizeof(*L));
}
/* Adds a slot of `floats` floats (0 = an empty slot); returns its index. The end never exceeds
   LORT__SIZE_LIMIT - LORT__ALIGN (the alignment slack of lort__lay_bytes included), and once a
   slot overflows the layout stays overflowed. */
LORT__PRIVATE int lort__lay_add(lort__layout *L, size_t floats) {
    size_t bytes = 0, end;
    int i = L->count;
    LORT_ASSERT(i < LORT__MAX_SLOTS);
    if (!lort__mul(floats, sizeof(float), &bytes) || L->end > LORT__SIZE_LIMIT - 2 * LORT__ALIGN ||
        bytes > LORT__SIZE_LIMIT - 2 * LORT__ALIGN - L->end)
        L->overflow = 1;
    L->off[i] = L->end;
    if (!L->overflow) {
        end = L->end + bytes;
        L->end = (end + (LORT__ALIGN - 1)) & ~(size_t)(LORT__ALIGN - 1);
    }
    L->count = i + 1;
    return i;
}
/* lort__lay_add for slot `slot` of the caller's enum: the enum names are bound to the calls
   (a layout built out of order fails the assertion under LORT_DEBUG). */
LORT__PRIVATE void lort__lay_put(lort__layout *L, int slot, size_t floats) {
    int i = lort__lay_add(L, floats);
    LORT_ASSERT(i == slot);
    (void)i;
    (void)slot;
}
/* Bytes a caller must provide: the slots plus alignment slack for any base pointer. */
LORT__PRIVATE lort_status lort__lay_bytes(const lort__layout *L, size_t *bytes) {
    if (L->overflow) return LORT_ERR_OVERFLOW;
    *bytes = L->end ? L->end + LORT__ALIGN - 1 : 0;
    return LORT_OK;
}
LORT__PRIVATE float *lort__lay_base(void *buf) {
    uintptr_t p = (uintptr_t)buf;
    p = (p + (LORT__ALIGN - 1)) & ~(uintptr_t)(LORT__ALIGN - 1);
    return (float *)p;
}
LORT__PRIVATE float *lort__lay_slot(float *base, const lort__layout *L, int slot) {
    return (float *)(void *)((char *)base + L->off[slot]);
}
/* Checks a caller buffer against a layout; `err` is the status for a short buffer. */
LORT__PRIVATE lort_status lort__lay_check(const lort__layout *L, const void *buf, size_t size,
                                          lort_status err) {
    size_t need;
    lort_status st = lort__lay_bytes(L, &need);
    if (st) return st;
    if (need == 0) return LORT_OK;
    if (!buf) return LORT_ERR_NULL;
    if (size < need) return err;
    return LORT_OK;
}
/* Checks the cache and workspace of a kernel call against the layouts. */
LORT__PRIVATE lort_status lort__bufs_check(const lort__layout *w, const lort__layout *c,
                                           const void *cache, size_t cache_size,
                                           const void *work, size_t work_size) {
    lort_status st;
    if (cache && (st = lort__lay_check(c, cache, cache_size, LORT_ERR_CACHE))) return st;
    return lort__lay_check(w, work, work_size, LORT_ERR_WORKSPACE);
}
/* n rows of x (n, d_in) and y (n, d_out) must be addressable. */
LORT__PRIVATE lort_status lort__rows_check(int n, int d_in, int d_out) {
    size_t t;
    if (n <= 0) return LORT_ERR_INVALID_ARG;
    if (!lort__mul3((size_t)n, (size_t)d_in, sizeof(float), &t) ||
        !lort__mul3((size_t)n, (size_t)d_out, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    return LORT_OK;
}

LORT__PRIVATE int lort__finite(float v) {
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return (u & 0x7f800000u) != 0x7f800000u;
}
LORT__PRIVATE int lort__all_finite(const float *x, size_t count) {
    size_t i;
    for (i = 0; i < count; ++i)
        if (!lort__finite(x[i])) return 0;
    return 1;
}
#ifdef LORT_DEBUG
#define LORT__DEBUG_FINITE(ptr, count) \
    do {                                \
        if ((ptr) && !lort__all_finite((ptr), (count))) return LORT_ERR_NONFINITE; \
    } while (0)
#else
#define LORT__DEBUG_FINITE(ptr, count) ((void)0)
#endif

/* ---- float bits and half floats (IEEE binary16 and bfloat16), shared by the file formats ---- */
LORT__PRIVATE uint32_t lort__f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
LORT__PRIVATE float lort__bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
LORT__PRIVATE float lort__f16_to_f32(unsigned h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, mant = h & 0x3FFu;
    if (e == 31) return lort__bits_f32(sign | 0x7F800000u | (mant << 13));
    if (e == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        float v = (float)mant * lort__bits_f32(0x33800000u);
        return sign ? -v : v;
    }
    return lort__bits_f32(sign | ((e + 112u) << 23) | (mant << 13));
}
LORT__PRIVATE unsigned lort__f32_to_f16(float f) { /* round to nearest even, as a cast */
    uint32_t u = lort__f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) return sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0u);
    if (a >= 0x477FF000u) return sign | 0x7C00u;          /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) {                                /* below 2^-14: subnormal half */
        uint32_t mant = (a & 0x7FFFFFu) | 0x800000u, shift, q, rem, half;
        int e = (int)(a >> 23);
        if (e < 102) return sign;                         /* below half the smallest: 0 */
        shift = (uint32_t)(126 - e);                      /* 14..24: value = mant >> shift */
        q = mant >> shift;
        rem = mant & ((1u << shift) - 1u);
        half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return sign | q;
    }
    {
        uint32_t q = ((a - 0x38000000u) >> 13), rem = a & 0x1FFFu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;
        return sign | q;
    }
}
LORT__PRIVATE float lort__bf16_to_f32(unsigned h) { return lort__bits_f32((uint32_t)h << 16); }
LORT__PRIVATE unsigned lort__f32_to_bf16(float f) {
    uint32_t u = lort__f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x40u; /* quiet NaN */
    u += 0x7FFFu + ((u >> 16) & 1u);
    return u >> 16;
}

// >>rng ================================================================================== impl

/* splitmix64 (Steele, Lea, Flood 2014): a counter passed through a strong 64-bit mix. */
LORT__PRIVATE uint64_t lort__mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}
LORT_DEF void lort_rng_seed(lort_rng *rng, uint64_t seed) {
    if (rng) rng->state = lort__mix64(seed ^ UINT64_C(0x6a09e667f3bcc909));
}
LORT_DEF uint64_t lort_rng_u64(lort_rng *rng) {
    rng->state += UINT64_C(0x9e3779b97f4a7c15);
    return lort__mix64(rng->state);
}
LORT_DEF float lort_rng_uniform(lort_rng *rng) {
    return (float)(lort_rng_u64(rng) >> 40) * (1.0f / 16777216.0f);
}
/* ln(x) for a finite x > 0 in float arithmetic only (no libm, no double): x = m 2^e with m in
   [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its odd
   series to s^11 (relative error < 2e-9 before rounding). */
LORT__PRIVATE float lort__logf(float x) {
    uint32_t b;
    int e;
    float m, s, s2;
    memcpy(&b, &x, sizeof b);
    e = (int)((b >> 23) & 0xffu) - 127;
    b = (b & 0x007fffffu) | 0x3f800000u; /* m in [1, 2) */
    memcpy(&m, &b, sizeof m);
    if (m > 1.41421356f) {
        m *= 0.5f;
        e += 1;
    }
    s = (m - 1.0f) / (m + 1.0f);
    s2 = s * s;
    return 2.0f * s *
               (1.0f + s2 * (1.0f / 3.0f + s2 * (0.2f + s2 * (1.0f / 7.0f +
                                                              s2 * (1.0f / 9.0f + s2 / 11.0f))))) +
           (float)e * 0.693147181f;
}
/* Marsaglia's polar method in float: (u, v) uniform in the unit disc, q = u^2 + v^2, then
   u sqrt(-2 ln q / q) is N(0, 1). Float only (sqrtf and lort__logf): no soft-double code on a
   single-precision FPU. The pair's second normal is dropped (the state stays one integer). */
LORT_DEF float lort_rng_normal(lort_rng *rng) {
    for (;;) {
        float u = 2.0f * lort_rng_uniform(rng) - 1.0f, v = 2.0f * lort_rng_uniform(rng) - 1.0f;
        float q = u * u + v * v;
        if (q > 0.0f && q < 1.0f) return u * sqrtf(-2.0f * lort__logf(q) / q);
    }
}
/* x[0..count) uniform on [-1, 1), two 24-bit draws per 64-bit step: the probe blocks of the
   randomized SVD (sub-Gaussian probes find the range as well as Gaussian ones, at a fraction of
   the cost of Box-Muller). */
LORT__PRIVATE void lort__fill_probes(lort_rng *rng, float *x, size_t count) {
    size_t i;
    for (i = 0; i < count; i += 2) {
        uint64_t b = lort_rng_u64(rng);
        x[i] = (float)(uint32_t)((b >> 8) & 0xffffffu) * (1.0f / 8388608.0f) - 1.0f;
        if (i + 1 < count) x[i + 1] = (float)(b >> 40) * (1.0f / 8388608.0f) - 1.0f;
    }
}
LORT_DEF float lort_hash_uniform(uint64_t seed, uint64_t row, uint64_t col) {
    uint64_t h = lort__mix64(seed ^ UINT64_C(0xd1b54a32d192ed03));
    h = lort__mix64(h ^ (row * UINT64_C(0x9e3779b97f4a7c15)));
    h = lort__mix64(h ^ (col * UINT64_C(0xc2b2ae3d27d4eb4f)));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}
LORT_DEF float lort_dropout_factor(uint64_t seed, float p, uint64_t row, uint64_t col) {
    if (!(p > 0.0f)) return 1.0f;
    return lort_hash_uniform(seed, row, col) < p ? 0.0f : 1.0f / (1.0f - p);
}
/* dst (n, d) = src * mask (dst == src allowed) */
LORT__PRIVATE void lort__dropout(uint64_t seed, float p, int n, int d, float *dst,
                                 const float *src) {
    int i, j;
    float keep = 1.0f / (1.0f - p);
    uint64_t h0 = lort__mix64(seed ^ UINT64_C(0xd1b54a32d192ed03));
    for (i = 0; i < n; ++i) {
        uint64_t hr = lort__mix64(h0 ^ ((uint64_t)i * UINT64_C(0x9e3779b97f4a7c15)));
        const float *s = src + (size_t)i * (size_t)d;
        float *o = dst + (size_t)i * (size_t)d;
        for (j = 0; j < d; ++j) {
            uint64_t h = lort__mix64(hr ^ ((uint64_t)j * UINT64_C(0xc2b2ae3d27d4eb4f)));
            float u = (float)(h >> 40) * (1.0f / 16777216.0f);
            o[j] = u < p ? 0.0f : s[j] * keep;
        }
    }
}
/* dst (n, d) += src * mask */
LORT__PRIVATE void lort__dropout_add(uint64_t seed, float p, int n, int d,
                                     float *LORT_RESTRICT dst, const float *LORT_RESTRICT src) {
    int i, j;
    float keep = 1.0f / (1.0f - p);
    uint64_t h0 = lort__mix64(seed ^ UINT64_C(0xd1b54a32d192ed03));
    for (i = 0; i < n; ++i) {
        uint64_t hr = lort__mix64(h0 ^ ((uint64_t)i * UINT64_C(0x9e3779b97f4a7c15)));
        const float *s = src + (size_t)i * (size_t)d;
        float *o = dst + (size_t)i * (size_t)d;
        for (j = 0; j < d; ++j) {
            uint64_t h = lort__mix64(hr ^ ((uint64_t)j * UINT64_C(0xc2b2ae3d27d4eb4f)));
            float u = (float)(h >> 40) * (1.0f / 16777216.0f);
            if (!(u < p)) o[j] += s[j] * keep;
        }
    }
}

// >>gemm ================================================================================= impl

LORT__PRIVATE int lort__is_zero(float v) { return fpclassify(v) == FP_ZERO; }

/* dot product with 8 independent partial sums so that compilers vectorise it */
LORT__PRIVATE float lort__dot(const float *a, const float *b, size_t len) {
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i, t, n8 = len & ~(size_t)7;
    for (i = 0; i < n8; i += 8)
        for (t = 0; t < 8; ++t) s[t] += a[i + t] * b[i + t];
    for (; i < len; ++i) s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}
LORT__PRIVATE void lort__axpy(float *y, float a, const float *x, size_t len) {
    size_t i;
    for (i = 0; i < len; ++i) y[i] += a * x[i];
}
/* dst (cols, rows) = src (rows, cols)^T, in blocks of 64 rows */
LORT__PRIVATE void lort__transpose(float *dst, const float *src, size_t rows, size_t cols) {
    size_t r, c, r0, rb = 64;
    for (r0 = 0; r0 < rows; r0 += rb) {
        size_t r1 = r0 + rb < rows ? r0 + rb : rows;
        for (c = 0; c < cols; ++c)
            for (r = r0; r < r1; ++r) dst[c * rows + r] = src[r * cols + c];
    }
}

/* The power of two 2^e with max|x| 2^e in [0.5, 1) (1 for an all-zero x): scaling by it is
   exact, and keeps sums of squares and products of the SVD's blocks inside float range. */
LORT__PRIVATE float lort__pow2_normalizer(const float *x, size_t count) {
    float mx = 0.0f;
    size_t i;
    int e;
    for (i = 0; i < count; ++i)
        if (fabsf(x[i]) > mx) mx = fabsf(x[i]);
    if (!(mx > 0.0f)) return 1.0f;
    (void)frexpf(mx, &e);
    e = e > 126 ? 126 : (e < -126 ? -126 : e);
    return ldexpf(1.0f, -e);
}


/* The built-in GEMM (LORT_NO_BLAS, lort_sgemm_builtin). C (M, N) = alpha op(A) op(B) + beta C,
   row-major, op(A)[i][k] = A[i*sa + k*sk]. Three paths, chosen by shape alone (so the result is
   a fixed function of the inputs, bit for bit, for one build):
     - "NT" products with few rows or columns (op(A) and op(B) both contiguous along k, as in
       x A^T with n <= 16 or r <= 16): 2 x 4 blocks of dot products, 8 partial sums each, no
       copies. These shapes are memory-bound; packing would cost as much as the arithmetic.
     - one or two rows with op(B) contiguous along j (a row vector times a matrix): rows of C in
       LORT__GEMM_VW-wide register strips, four partial sums over k.
     - everything else (Goto's scheme): for each (KC x NC) panel of op(B), packed on the stack in
       NR-wide column slivers, LORT_GEMM_MR-row strips of op(A) (read in place, or packed with
       zero padding at the edge or when strided) meet each sliver in an MR x NR register tile.
   The micro-kernel is plain C with constant bounds that compilers vectorise at -O3 (or -O2
   with -ftree-vectorize); LORT__FMA fuses the multiply-add when the target has an FMA unit. */
#if !defined(LORT_GEMM_NO_FMA) && (defined(__FMA__) || defined(__ARM_FEATURE_FMA))
#define LORT__FMA(a, b, c) fmaf((a), (b), (c))
#else
#define LORT__FMA(a, b, c) ((c) + (a) * (b))
#endif
#define LORT__GEMM_VW 32 /* columns per register strip of the row-vector path */

/* GCC and Clang: the micro-kernel in the compilers' generic vector extension (any target: SSE,
   AVX, NEON, or scalar code), LORT__VL floats per vector, multiply-adds contracted to FMA where
   the target has one. Other compilers, or LORT_GEMM_PORTABLE: the plain C loops below. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(LORT__GEMM_SIMD) && \
    !defined(LORT_GEMM_PORTABLE)
#if defined(__AVX__)
#define LORT__VL 8
#else
#define LORT__VL 4
#endif
#if LORT_GEMM_NR % LORT__VL == 0
#define LORT__GEMM_VEC 1
#endif
#endif
#if defined(LORT__GEMM_VEC) && defined(__GNUC__) && !defined(__clang__) && !defined(LORT_GEMM_NO_FMA)
#define LORT__GEMM_PRAGMA 1
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#endif

#ifdef LORT__GEMM_VEC
typedef float lort__vf __attribute__((vector_size(4 * LORT__VL)));
#define LORT__NV (LORT_GEMM_NR / LORT__VL)
LORT__PRIVATE void lort__gemm_micro(int kb, float alpha, const float *LORT_RESTRICT A, size_t sa,
                                    size_t sk, const float *LORT_RESTRICT Bp, size_t ldp,
                                    float *LORT_RESTRICT C, size_t ldc, int mr, int nr) {
    lort__vf acc[LORT_GEMM_MR][LORT__NV], zero = {0.0f}, b[LORT__NV], c;
    int i, v, k, t;
    for (i = 0; i < LORT_GEMM_MR; ++i)
        for (v = 0; v < LORT__NV; ++v) acc[i][v] = zero;
    for (k = 0; k < kb; ++k) {
        const float *a = A + (size_t)k * sk;
        for (v = 0; v < LORT__NV; ++v)
            memcpy(&b[v], Bp + (size_t)k * ldp + (size_t)v * LORT__VL, sizeof b[v]);
        for (i = 0; i < LORT_GEMM_MR; ++i) {
            float as = a[(size_t)i * sa];
            for (v = 0; v < LORT__NV; ++v) acc[i][v] += as * b[v];
        }
    }
    if (mr == LORT_GEMM_MR && nr == LORT_GEMM_NR) {
        for (i = 0; i < LORT_GEMM_MR; ++i)
            for (v = 0; v < LORT__NV; ++v) {
                float *p = C + (size_t)i * ldc + (size_t)v * LORT__VL;
                memcpy(&c, p, sizeof c);
                c += alpha * acc[i][v];
                memcpy(p, &c, sizeof c);
            }
        return;
    }
    for (i = 0; i < mr; ++i)
        for (t = 0; t < nr; ++t)
            C[(size_t)i * ldc + (size_t)t] += alpha * acc[i][t / LORT__VL][t % LORT__VL];
}
#else
/* C tile (mr x nr, stride ldc) += alpha * sum_k a(i, k) b(k, j), k in [0, kb), where
   a(i, k) = A[i*sa + k*sk] for i < MR (rows >= mr must be readable: padding or real rows) and
   b(k, j) = Bp[k*ldp + j] (a packed sliver, ldp = NR, or whole columns of B read in place). */
LORT__PRIVATE void lort__gemm_micro(int kb, float alpha, const float *LORT_RESTRICT A, size_t sa,
                                    size_t sk, const float *LORT_RESTRICT Bp, size_t ldp,
                                    float *LORT_RESTRICT C, size_t ldc, int mr, int nr) {
    float acc[LORT_GEMM_MR][LORT_GEMM_NR];
    int i, j, k;
    for (i = 0; i < LORT_GEMM_MR; ++i)
        for (j = 0; j < LORT_GEMM_NR; ++j) acc[i][j] = 0.0f;
    for (k = 0; k < kb; ++k) {
        const float *b = Bp + (size_t)k * ldp, *a = A + (size_t)k * sk;
        for (i = 0; i < LORT_GEMM_MR; ++i) {
            float av = a[(size_t)i * sa];
            for (j = 0; j < LORT_GEMM_NR; ++j) acc[i][j] = LORT__FMA(av, b[j], acc[i][j]);
        }
    }
    for (i = 0; i < mr; ++i)
        for (j = 0; j < nr; ++j) C[(size_t)i * ldc + (size_t)j] += alpha * acc[i][j];
}
#endif

/* Pack op(B) rows [k0, k0+kb) x cols [j0, j0+nb) as NR-wide slivers, each kb x NR contiguous,
   zero-padded to a whole sliver. op(B)[k][j] = B[k*ldb + j], or B[j*ldb + k] when tB. */
LORT__PRIVATE void lort__gemm_pack_b(float *LORT_RESTRICT dst, int tB, const float *B, size_t ldb,
                                     int k0, int kb, int j0, int nb) {
    int jr, j, k;
    for (jr = 0; jr < nb; jr += LORT_GEMM_NR, dst += (size_t)kb * LORT_GEMM_NR) {
        int w = nb - jr < LORT_GEMM_NR ? nb - jr : LORT_GEMM_NR;
        if (tB) {
            for (j = 0; j < w; ++j) {
                const float *src = B + (size_t)(j0 + jr + j) * ldb + (size_t)k0;
                for (k = 0; k < kb; ++k) dst[(size_t)k * LORT_GEMM_NR + (size_t)j] = src[k];
            }
        } else {
            for (k = 0; k < kb; ++k) {
                const float *src = B + (size_t)(k0 + k) * ldb + (size_t)(j0 + jr);
                for (j = 0; j < w; ++j) dst[(size_t)k * LORT_GEMM_NR + (size_t)j] = src[j];
            }
        }
        if (w < LORT_GEMM_NR)
            for (k = 0; k < kb; ++k)
                for (j = w; j < LORT_GEMM_NR; ++j) dst[(size_t)k * LORT_GEMM_NR + (size_t)j] = 0.0f;
    }
}

/* c (1, N) += alpha a B^T: dot products of one row a (K, contiguous) with the N rows of B
   (stride ldb). Long rows: 4 rows of B at a time, 2 x 4 vector partial sums combined in a
   fixed tree; short rows (K < 32): 8 independent scalar chains, one per row of B. */
LORT__PRIVATE void lort__gemm_dotrow(int N, int K, float alpha, const float *LORT_RESTRICT a,
                                     const float *LORT_RESTRICT B, size_t ldb,
                                     float *LORT_RESTRICT c) {
    int j = 0, k, q;
    if (K < 32) {
        for (; j + 8 <= N; j += 8) {
            float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            const float *b = B + (size_t)j * ldb;
            for (k = 0; k < K; ++k)
                for (q = 0; q < 8; ++q) s[q] = LORT__FMA(a[k], b[(size_t)q * ldb + (size_t)k], s[q]);
            for (q = 0; q < 8; ++q) c[j + q] += alpha * s[q];
        }
        for (; j < N; ++j) {
            float s = 0.0f;
            const float *b = B + (size_t)j * ldb;
            for (k = 0; k < K; ++k) s = LORT__FMA(a[k], b[k], s);
            c[j] += alpha * s;
        }
        return;
    }
    for (; j < N; j += 4) {
        int nr = N - j < 4 ? N - j : 4, t;
        const float *b[4];
        float r[4];
#ifdef LORT__GEMM_VEC
        const int step = 2 * LORT__VL, K2 = K - K % step;
        lort__vf s[2][4], zero = {0.0f}, av, bv;
        for (q = 0; q < 4; ++q) s[0][q] = s[1][q] = zero;
        for (q = 0; q < 4; ++q) b[q] = B + (size_t)(j + (q < nr ? q : 0)) * ldb;
        for (k = 0; k < K2; k += step) {
            int h;
            for (h = 0; h < 2; ++h) {
                memcpy(&av, a + k + h * LORT__VL, sizeof av);
                for (q = 0; q < 4; ++q) {
                    memcpy(&bv, b[q] + k + h * LORT__VL, sizeof bv);
                    s[h][q] += av * bv;
                }
            }
        }
        for (q = 0; q < 4; ++q) {
            lort__vf v = s[0][q] + s[1][q];
            float sum = 0.0f;
            for (t = 0; t < LORT__VL; ++t) sum += v[t];
            r[q] = sum;
        }
#else
        const int K2 = K & ~7;
        float s[4][8];
        for (q = 0; q < 4; ++q)
            for (t = 0; t < 8; ++t) s[q][t] = 0.0f;
        for (q = 0; q < 4; ++q) b[q] = B + (size_t)(j + (q < nr ? q : 0)) * ldb;
        for (k = 0; k < K2; k += 8)
            for (q = 0; q < 4; ++q)
                for (t = 0; t < 8; ++t) s[q][t] = LORT__FMA(a[k + t], b[q][k + t], s[q][t]);
        for (q = 0; q < 4; ++q) {
            const float *v = s[q];
            r[q] = ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
        }
#endif
        for (k = K2; k < K; ++k)
            for (q = 0; q < 4; ++q) r[q] = LORT__FMA(a[k], b[q][k], r[q]);
        for (q = 0; q < nr; ++q) c[j + q] += alpha * r[q];
    }
}

/* c (1, N) += alpha sum_k a(k) B[k*ldb + j], a(k) = a[k*sk]: strips of columns held in
   registers across the whole of k, with four partial sums (k mod 4) added in a fixed order. */
#ifdef LORT__GEMM_VEC
LORT__PRIVATE void lort__gemm_rowvec_strip(int nv, int K, float alpha, const float *a, size_t sk,
                                           const float *B, size_t ldb, float *c) {
    lort__vf s[4][2], zero = {0.0f}, bv, cv;
    int k, u, v, K4 = K & ~3;
    for (u = 0; u < 4; ++u) s[u][0] = s[u][1] = zero;
    for (k = 0; k < K4; k += 4)
        for (u = 0; u < 4; ++u) {
            float av = a[(size_t)(k + u) * sk];
            for (v = 0; v < nv; ++v) {
                memcpy(&bv, B + (size_t)(k + u) * ldb + (size_t)v * LORT__VL, sizeof bv);
                s[u][v] += av * bv;
            }
        }
    for (; k < K; ++k) {
        float av = a[(size_t)k * sk];
        for (v = 0; v < nv; ++v) {
            memcpy(&bv, B + (size_t)k * ldb + (size_t)v * LORT__VL, sizeof bv);
            s[0][v] += av * bv;
        }
    }
    for (v = 0; v < nv; ++v) {
        memcpy(&cv, c + (size_t)v * LORT__VL, sizeof cv);
        cv += alpha * ((s[0][v] + s[1][v]) + (s[2][v] + s[3][v]));
        memcpy(c + (size_t)v * LORT__VL, &cv, sizeof cv);
    }
}
#endif
LORT__PRIVATE void lort__gemm_rowvec(int N, int K, float alpha, const float *a, size_t sk,
                                     const float *B, size_t ldb, float *c) {
    int j = 0, k, t, u;
#ifdef LORT__GEMM_VEC
    for (; j + 2 * LORT__VL <= N; j += 2 * LORT__VL)
        lort__gemm_rowvec_strip(2, K, alpha, a, sk, B + j, ldb, c + j);
    for (; j + LORT__VL <= N; j += LORT__VL)
        lort__gemm_rowvec_strip(1, K, alpha, a, sk, B + j, ldb, c + j);
#endif
    for (; j < N; j += LORT__GEMM_VW) {
        float s[4][LORT__GEMM_VW];
        int w = N - j < LORT__GEMM_VW ? N - j : LORT__GEMM_VW;
        const float *bj = B + (size_t)j;
        for (u = 0; u < 4; ++u)
            for (t = 0; t < LORT__GEMM_VW; ++t) s[u][t] = 0.0f;
        for (k = 0; k < K; ++k) {
            const float *b = bj + (size_t)k * ldb;
            float av = a[(size_t)k * sk];
            for (t = 0; t < w; ++t) s[k & 3][t] = LORT__FMA(av, b[t], s[k & 3][t]);
        }
        for (t = 0; t < w; ++t) c[j + t] += alpha * ((s[0][t] + s[1][t]) + (s[2][t] + s[3][t]));
    }
}

/* The built-in GEMM: scale C by beta once, then one of the three paths above. The stack holds
   the B panel (KC x NC floats) and one MR x KC strip of A: see LORT_GEMM_KC in CONFIGURATION. */
LORT__PRIVATE void lort__gemm_builtin(int tA, int tB, int M, int N, int K, float alpha,
                                      const float *A, size_t lda, const float *B, size_t ldb,
                                      float beta, float *C, size_t ldc) {
    float panel[LORT_GEMM_KC * LORT_GEMM_NC], strip[LORT_GEMM_MR * LORT_GEMM_KC];
    int i, j, k, k0, j0;
    size_t sa = tA ? 1 : lda, sk = tA ? lda : 1; /* op(A)[i][k] = A[i*sa + k*sk] */
    for (i = 0; i < M; ++i) {
        float *c = C + (size_t)i * ldc;
        if (lort__is_zero(beta)) memset(c, 0, (size_t)N * sizeof(float));
        else if (fpclassify(beta - 1.0f) != FP_ZERO)
            for (j = 0; j < N; ++j) c[j] *= beta;
    }
    if (K == 0 || lort__is_zero(alpha)) return;
    if (M <= 2) { /* one or two rows: dot products (op(B) rows contiguous) or row updates */
        for (i = 0; i < M; ++i) {
            const float *a = A + (size_t)i * sa;
            float *c = C + (size_t)i * ldc;
            if (!tB) {
                lort__gemm_rowvec(N, K, alpha, a, sk, B, ldb, c);
            } else if (!tA) {
                lort__gemm_dotrow(N, K, alpha, a, B, ldb, c);
            } else { /* strided row of op(A): gather it in chunks */
                const int chunk = LORT_GEMM_MR * LORT_GEMM_KC;
                for (k0 = 0; k0 < K; k0 += chunk) {
                    int kb = K - k0 < chunk ? K - k0 : chunk;
                    for (k = 0; k < kb; ++k) strip[k] = a[(size_t)(k0 + k) * sk];
                    lort__gemm_dotrow(N, kb, alpha, strip, B + (size_t)k0, ldb, c);
                }
            }
        }
        return;
    }
    for (j0 = 0; j0 < N; j0 += LORT_GEMM_NC) {
        int nb = N - j0 < LORT_GEMM_NC ? N - j0 : LORT_GEMM_NC;
        for (k0 = 0; k0 < K; k0 += LORT_GEMM_KC) {
            int kb = K - k0 < LORT_GEMM_KC ? K - k0 : LORT_GEMM_KC, jr;
            /* few rows and op(B) = B: read whole NR-column slivers of B in place (packing would
               cost as much as the arithmetic); pack only a ragged last sliver */
            int direct = !tB && M <= 4 * LORT_GEMM_MR, nfull = nb - nb % LORT_GEMM_NR;
            if (!direct) lort__gemm_pack_b(panel, tB, B, ldb, k0, kb, j0, nb);
            else if (nfull < nb) lort__gemm_pack_b(panel, 0, B, ldb, k0, kb, j0 + nfull, nb - nfull);
            for (i = 0; i < M; i += LORT_GEMM_MR) {
                int mr = M - i < LORT_GEMM_MR ? M - i : LORT_GEMM_MR;
                const float *a = A + (size_t)i * sa + (size_t)k0 * sk;
                size_t psa = sa, psk = sk;
                if (mr < LORT_GEMM_MR) { /* edge strip: copy with zero rows below */
                    int ii;
                    for (k = 0; k < kb; ++k)
                        for (ii = 0; ii < LORT_GEMM_MR; ++ii)
                            strip[(size_t)k * LORT_GEMM_MR + (size_t)ii] =
                                ii < mr ? a[(size_t)ii * sa + (size_t)k * sk] : 0.0f;
                    a = strip;
                    psa = 1;
                    psk = LORT_GEMM_MR;
                }
                for (jr = 0; jr < nb; jr += LORT_GEMM_NR) {
                    const float *bp = panel + (size_t)jr * (size_t)kb;
                    size_t ldp = LORT_GEMM_NR;
                    if (direct) {
                        bp = jr < nfull ? B + (size_t)k0 * ldb + (size_t)(j0 + jr) : panel;
                        ldp = jr < nfull ? ldb : LORT_GEMM_NR;
                    }
                    lort__gemm_micro(kb, alpha, a, psa, psk, bp, ldp,
                                     C + (size_t)i * ldc + (size_t)(j0 + jr), ldc, mr,
                                     nb - jr < LORT_GEMM_NR ? nb - jr : LORT_GEMM_NR);
                }
            }
        }
    }
}

#ifdef LORT__GEMM_PRAGMA
#pragma GCC pop_options
#endif

/* The one GEMM wrapper every kernel calls; arguments already validated. Row-major:
   C (M, N) = alpha op(A) op(B) + beta C. */
LORT__PRIVATE void lort__gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A,
                              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
#if defined(LORT_SGEMM)
    LORT_SGEMM(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#elif defined(LORT_NO_BLAS)
    lort__gemm_builtin(tA, tB, M, N, K, alpha, A, (size_t)lda, B, (size_t)ldb, beta, C,
                       (size_t)ldc);
#else
    if (K <= 0) { /* some BLAS reject K = 0; keep BLAS semantics ourselves */
        lort__gemm_builtin(tA, tB, M, N, 0, alpha, A, (size_t)lda, B, (size_t)ldb, beta, C,
                           (size_t)ldc);
        return;
    }
    if (M == 1 || N == 1) { /* a vector: sgemv is several times faster than sgemm here */
        if (lort__is_zero(beta)) { /* BLAS may compute 0 * C: make beta = 0 overwrite NaN */
            int i;
            for (i = 0; i < M; ++i) memset(C + (size_t)i * (size_t)ldc, 0, (size_t)N * sizeof(float));
        }
        if (M == 1) /* C row = op(A) row 0 times op(B): y = op(B)^T x */
            cblas_sgemv(CblasRowMajor, tB ? CblasNoTrans : CblasTrans, tB ? N : K, tB ? K : N,
                        alpha, B, ldb, A, tA ? lda : 1, beta, C, 1);
        else /* C column = op(A) times op(B) column 0 */
            cblas_sgemv(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tA ? K : M, tA ? M : K,
                        alpha, A, lda, B, tB ? 1 : ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

LORT__PRIVATE lort_status lort__gemm_check(int tA, int tB, int M, int N, int K, const float *A,
                                           int lda, const float *B, int ldb, const float *C,
                                           int ldc) {
    int arows = tA ? K : M, acols = tA ? M : K, brows = tB ? N : K, bcols = tB ? K : N;
    size_t t;
    if (M < 0 || N < 0 || K < 0) return LORT_ERR_INVALID_ARG;
    if ((M > 0 && N > 0 && !C) || (M > 0 && N > 0 && K > 0 && (!A || !B))) return LORT_ERR_NULL;
    if (lda < (acols > 1 ? acols : 1) || ldb < (bcols > 1 ? bcols : 1) || ldc < (N > 1 ? N : 1))
        return LORT_ERR_SHAPE;
    if (!lort__mul((size_t)arows, (size_t)lda, &t) || !lort__mul((size_t)brows, (size_t)ldb, &t) ||
        !lort__mul((size_t)M, (size_t)ldc, &t) || !lort__mul(t, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    return LORT_OK;
}

LORT_DEF lort_status lort_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                                const float *A, int lda, const float *B, int ldb, float beta,
                                float *C, int ldc) {
    lort_status st = lort__gemm_check(transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    if (st) return st;
    lort__gemm(transA != 0, transB != 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return LORT_OK;
}

LORT_DEF lort_status lort_sgemm_builtin(int transA, int transB, int M, int N, int K,
                                        float alpha, const float *A, int lda, const float *B,
                                        int ldb, float beta, float *C, int ldc) {
    lort_status st = lort__gemm_check(transA, transB, M, N, K, A, lda, B, ldb, C, ldc);
    if (st) return st;
    if (M > 0 && N > 0)
        lort__gemm_builtin(transA != 0, transB != 0, M, N, K, alpha, A, (size_t)lda, B,
                           (size_t)ldb, beta, C, (size_t)ldc);
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__rows_check(int n, int d_in, int d_out);

LORT_DEF lort_status lort_linear_forward(float *y, const float *x, const float *W, const float *b,
                                         int n, int d_in, int d_out) {
    lort_status st;
    size_t t;
    int i;
    if (d_in <= 0 || d_out <= 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort__rows_check(n, d_in, d_out))) return st;
    if (!lort__mul3((size_t)d_in, (size_t)d_out, sizeof(float), &t)) return LORT_ERR_OVERFLOW;
    if (!y || !x || !W) return LORT_ERR_NULL;
    if (b)
        for (i = 0; i < n; ++i) memcpy(y + (size_t)i * (size_t)d_out, b, (size_t)d_out * sizeof(float));
    lort__gemm(0, 1, n, d_out, d_in, 1.0f, x, d_in, W, d_in, b ? 1.0f : 0.0f, y, d_out);
    return LORT_OK;
}

LORT_DEF lort_status lort_linear_backward(float *dx, float *dW, float *db, const float *dy,
                                          const float *x, const float *W, int n, int d_in,
                                          int d_out) {
    lort_status st;
    size_t t;
    int i, j;
    if (d_in <= 0 || d_out <= 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort__rows_check(n, d_in, d_out))) return st;
    if (!lort__mul3((size_t)d_in, (size_t)d_out, sizeof(float), &t)) return LORT_ERR_OVERFLOW;
    if (!dy || (dx && !W) || (dW && !x)) return LORT_ERR_NULL;
    if (dx) lort__gemm(0, 0, n, d_in, d_out, 1.0f, dy, d_out, W, d_in, 1.0f, dx, d_in);
    if (dW) lort__gemm(1, 0, d_out, d_in, n, 1.0f, dy, d_out, x, d_in, 1.0f, dW, d_in);
    if (db)
        for (i = 0; i < n; ++i)
            for (j = 0; j < d_out; ++j) db[j] += dy[(size_t)i * (size_t)d_out + (size_t)j];
    return LORT_OK;
}

// >>svd ================================================================================== impl
#if LORT__HAS_SVD

/* Householder QR of k row vectors. X: (k, len), k <= len, row i = x_i, destroyed (it keeps the
   reflectors). On return Q: (k, len) has orthonormal rows and R: (k, k) is upper triangular with
   x_i = sum_{j <= i} R[j][i] q_j, i.e. X^T = Q^T R. tau: k floats of scratch. */
LORT__PRIVATE void lort__rowqr(int k, int len, float *X, float *R, float *Q, float *tau) {
    int i, j;
    size_t L = (size_t)len, t, kk = (size_t)k * (size_t)k;
    float c = lort__pow2_normalizer(X, (size_t)k * L), cinv = 1.0f / c;
    for (t = 0; t < (size_t)k * L; ++t) X[t] *= c; /* exact: keeps squares in range */
    for (i = 0; i < k; ++i) {
        float *xi = X + (size_t)i * L;
        size_t tail = L - (size_t)i - 1;
        double alpha = (double)xi[i], sigma = (double)lort__dot(xi + i + 1, xi + i + 1, tail);
        double norm = sqrt(alpha * alpha + sigma), beta;
        if (norm <= 0.0 || sigma <= 0.0) { /* nothing below the diagonal: H = I */
            tau[i] = 0.0f;
            R[(size_t)i * (size_t)k + (size_t)i] = xi[i];
            xi[i] = 1.0f;
        } else {
            float inv;
            beta = alpha >= 0.0 ? -norm : norm;
            tau[i] = (float)((beta - alpha) / beta);
            inv = (float)(1.0 / (alpha - beta));
            for (j = i + 1; j < len; ++j) xi[j] *= inv;
            xi[i] = 1.0f;
            R[(size_t)i * (size_t)k + (size_t)i] = (float)beta;
        }
        for (j = i + 1; j < k; ++j) { /* apply H_i to x_j */
            float *xj = X + (size_t)j * L;
            float w = tau[i] * (xj[i] + lort__dot(xi + i + 1, xj + i + 1, tail));
            xj[i] -= w;
            lort__axpy(xj + i + 1, -w, xi + i + 1, tail);
        }
        for (j = 0; j < i; ++j) R[(size_t)j * (size_t)k + (size_t)i] = xi[j];
        for (j = i + 1; j < k; ++j) R[(size_t)j * (size_t)k + (size_t)i] = 0.0f;
    }
    for (t = 0; t < kk; ++t) R[t] *= cinv;
    /* Q rows q_j = H_0 ... H_{k-1} e_j, accumulated backwards */
    memset(Q, 0, (size_t)k * L * sizeof(float));
    for (j = 0; j < k; ++j) Q[(size_t)j * L + (size_t)j] = 1.0f;
    for (i = k - 1; i >= 0; --i) {
        const float *v = X + (size_t)i * L;
        size_t tail = L - (size_t)i - 1;
        if (lort__is_zero(tau[i])) continue;
        for (j = i; j < k; ++j) {
            float *q = Q + (size_t)j * L;
            float w = tau[i] * (q[i] + lort__dot(v + i + 1, q + i + 1, tail));
            q[i] -= w;
            lort__axpy(q + i + 1, -w, v + i + 1, tail);
        }
    }
}

/* double dot product with 4 independent partial sums (vectorisable) */
LORT__PRIVATE double lort__ddot(const double *a, const double *b, size_t len) {
    double s[4] = {0, 0, 0, 0};
    size_t i, t, n4 = len & ~(size_t)3;
    for (i = 0; i < n4; i += 4)
        for (t = 0; t < 4; ++t) s[t] += a[i + t] * b[i + t];
    for (; i < len; ++i) s[0] += a[i] * b[i];
    return (s[0] + s[1]) + (s[2] + s[3]);
}

/* Cholesky factor of the k x k float Gram matrix G = L L^T, L lower triangular in double
   (row-major, upper part untouched). Returns 0 when a pivot falls to rel times its diagonal
   entry or below: the matrix is singular, or too ill-conditioned for its float entries. */
LORT__PRIVATE int lort__chol(int k, const float *G, double *L, double rel) {
    size_t K = (size_t)k;
    int i, j, p;
    for (j = 0; j < k; ++j) {
        double d = (double)G[(size_t)j * K + (size_t)j], g0 = d;
        for (p = 0; p < j; ++p) d -= L[(size_t)j * K + (size_t)p] * L[(size_t)j * K + (size_t)p];
        if (!(d > rel * g0) || !(d > 0.0)) return 0;
        L[(size_t)j * K + (size_t)j] = sqrt(d);
        for (i = j + 1; i < k; ++i) {
            double s = (double)G[(size_t)i * K + (size_t)j];
            for (p = 0; p < j; ++p) s -= L[(size_t)i * K + (size_t)p] * L[(size_t)j * K + (size_t)p];
            L[(size_t)i * K + (size_t)j] = s / L[(size_t)j * K + (size_t)j];
        }
    }
    return 1;
}

/* Smallest eigenvalue of the Gram matrix Z Z^T of the k rows of Z (k, len) -- in a power step
   of the randomized SVD, the smallest squared Ritz value -- by inverse iteration through the
   Cholesky factor, warm-started from v (k doubles, kept for the next call; w: k doubles of
   scratch). The Rayleigh quotient returned bounds the eigenvalue from above and tightens with
   the steps. Returns -1 when the Gram matrix is numerically singular. G: k*k floats, L: k*k
   doubles. */
LORT__PRIVATE double lort__gram_min_eig(int k, int len, const float *Z, float *G, double *L,
                                        double *v, double *w) {
    size_t K = (size_t)k;
    int i, j, step;
    double vw = 0.0, ww = 1.0;
    lort__gemm(0, 1, k, k, len, 1.0f, Z, len, Z, len, 0.0f, G, k);
    if (!lort__chol(k, G, L, 1e-12)) return -1.0;
    for (step = 0; step < 40; ++step) {
        for (i = 0; i < k; ++i) { /* L y = v (y into w) */
            double s = v[i];
            for (j = 0; j < i; ++j) s -= L[(size_t)i * K + (size_t)j] * w[j];
            w[i] = s / L[(size_t)i * K + (size_t)i];
        }
        for (i = k - 1; i >= 0; --i) { /* L^T w = y, in place */
            double s = w[i];
            for (j = i + 1; j < k; ++j) s -= L[(size_t)j * K + (size_t)i] * w[j];
            w[i] = s / L[(size_t)i * K + (size_t)i];
        }
        vw = lort__ddot(v, w, K);
        ww = lort__ddot(w, w, K);
        for (i = 0; i < k; ++i) v[i] = w[i] / sqrt(ww);
    }
    return vw / ww; /* Rayleigh quotient of G at w = G^-1 v: w^T G w / w^T w */
}

/* Orthonormalises the k rows of Y (k, len), k <= len, into Q by CholeskyQR: `passes` times
   (2 = CholeskyQR2, orthonormal to rounding; 1 = a well-conditioned basis, enough between power
   steps) the Gram matrix Y Y^T (a GEMM), its Cholesky factor L in double, and Q = L^-1 Y (a
   GEMM). Returns 0 when a pivot shows the block too ill-conditioned for float Gram matrices; Y
   then holds a basis of the same span (scaled, or the first pass's rows) for Householder QR to
   finish. Y is destroyed. G: k*k floats; L, Li: k*k doubles each. Lprod (k*k doubles, or NULL)
   receives the product of the passes' factors, the lower triangle with (scaled) Y = Lprod Q. */
LORT__PRIVATE int lort__cholqr(int k, int len, float *Y, float *Q, float *G, double *L,
                               double *Li, double *Lprod, int passes) {
    size_t K = (size_t)k, t, total = (size_t)k * (size_t)len;
    float *src = Y, *dst = Q, c = lort__pow2_normalizer(Y, total);
    int pass, i, j, p;
    for (t = 0; t < total; ++t) Y[t] *= c; /* exact; keeps the Gram matrix finite */
    for (pass = 0; pass < passes; ++pass) {
        lort__gemm(0, 1, k, k, len, 1.0f, src, len, src, len, 0.0f, G, k); /* G = S S^T */
        if (!lort__chol(k, G, L, 1e-5)) { /* ill-conditioned (or zero) block: Householder's turn */
            if (pass == 1) memcpy(Y, Q, total * sizeof(float));
            return 0;
        }
        for (j = 0; j < k; ++j) /* Li = L^-1 (lower), column by column */
            for (i = 0; i < k; ++i) {
                double s = i == j ? 1.0 : 0.0;
                if (i < j) {
                    Li[(size_t)i * K + (size_t)j] = 0.0;
                    continue;
                }
                for (p = j; p < i; ++p) s -= L[(size_t)i * K + (size_t)p] * Li[(size_t)p * K + (size_t)j];
                Li[(size_t)i * K + (size_t)j] = s / L[(size_t)i * K + (size_t)i];
            }
        for (t = 0; t < K * K; ++t) G[t] = (float)Li[t];
        lort__gemm(0, 0, k, len, k, 1.0f, G, k, src, len, 0.0f, dst, len); /* D = L^-1 S */
        if (Lprod && pass == 0) memcpy(Lprod, L, K * K * sizeof(double));
        else if (Lprod) { /* Lprod <- Lprod L (lower times lower), through Li */
            for (i = 0; i < k; ++i)
                for (j = 0; j < k; ++j) {
                    double acc = 0.0;
                    for (p = j; p <= i; ++p)
                        acc += Lprod[(size_t)i * K + (size_t)p] * L[(size_t)p * K + (size_t)j];
                    Li[(size_t)i * K + (size_t)j] = acc;
                }
            memcpy(Lprod, Li, K * K * sizeof(double));
        }
        src = dst;
        dst = pass == 0 ? Y : Q;
    }
    if (src != Q) memcpy(Q, src, total * sizeof(float));
    if (Lprod)
        for (t = 0; t < K * K; ++t) Lprod[t] /= (double)c; /* back to the unscaled Y */
    return 1;
}

/* One-sided Jacobi SVD in double of a k x k matrix M given by its columns: T row i = column i
   of M (destroyed). On return M = sum_i S[i] u_i p_i^T with S descending, U row i = u_i and
   P row i = p_i, both orthonormal (u_i for S[i] ~ 0 completed to an orthonormal set).
   order: k ints of scratch; S doubles as the squared column norms during the sweeps.
   Returns LORT_ERR_NO_CONVERGENCE after max_sweeps sweeps. */
LORT__PRIVATE lort_status lort__jacobi(int k, double *T, double *P, double *U, double *S,
                                       int *order, int max_sweeps) {
    int i, j, p, q, sweep, rotated = 1;
    size_t K = (size_t)k;
    const double tol = 1e-15;
    double smax = 0.0, floor2 = 0.0;
    memset(P, 0, K * K * sizeof(double));
    for (i = 0; i < k; ++i) P[(size_t)i * K + (size_t)i] = 1.0;
    /* a column below tol ||M||_F (an invariant of the rotations) is numerically zero: rotating
       it against another changes nothing, and a denormal one would never pass the test below */
    for (i = 0; i < k * k; ++i) floor2 += T[i] * T[i];
    floor2 *= tol * tol;
    for (sweep = 0; sweep < max_sweeps && rotated; ++sweep) {
        rotated = 0;
        for (i = 0; i < k; ++i) S[i] = lort__ddot(T + (size_t)i * K, T + (size_t)i * K, K);
        for (p = 0; p < k - 1; ++p)
            for (q = p + 1; q < k; ++q) {
                double *tp = T + (size_t)p * K, *tq = T + (size_t)q * K;
                double a = S[p], b = S[q], g, zeta, t, c, s;
                if (a < floor2 || b < floor2) continue;
                g = lort__ddot(tp, tq, K);
                if (!(fabs(g) > tol * sqrt(a * b)) || fpclassify(g) == FP_ZERO) continue;
                rotated = 1;
                zeta = (b - a) / (2.0 * g);
                t = (zeta >= 0.0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                c = 1.0 / sqrt(1.0 + t * t);
                s = c * t;
                S[p] = a - t * g; /* squared norms after the rotation (recomputed each sweep) */
                S[q] = b + t * g;
                for (i = 0; i < k; ++i) {
                    double x = tp[i], y = tq[i];
                    tp[i] = c * x - s * y;
                    tq[i] = s * x + c * y;
                }
                tp = P + (size_t)p * K;
                tq = P + (size_t)q * K;
                for (i = 0; i < k; ++i) {
                    double x = tp[i], y = tq[i];
                    tp[i] = c * x - s * y;
                    tq[i] = s * x + c * y;
                }
            }
    }
    if (rotated) return LORT_ERR_NO_CONVERGENCE;
    for (i = 0; i < k; ++i) {
        double s2 = 0.0;
        for (j = 0; j < k; ++j) s2 += T[(size_t)i * K + (size_t)j] * T[(size_t)i * K + (size_t)j];
        S[i] = sqrt(s2);
        order[i] = i;
        if (S[i] > smax) smax = S[i];
    }
    for (i = 1; i < k; ++i) { /* insertion sort by S descending (stable) */
        int v = order[i];
        for (j = i; j > 0 && S[order[j - 1]] < S[v]; --j) order[j] = order[j - 1];
        order[j] = v;
    }
    /* U row i = t_order[i] / S; P and S permuted into place (U as scratch for the permute) */
    for (i = 0; i < k; ++i) memcpy(U + (size_t)i * K, P + (size_t)order[i] * K, K * sizeof(double));
    memcpy(P, U, K * K * sizeof(double));
    for (i = 0; i < k; ++i) {
        const double *t = T + (size_t)order[i] * K;
        double *u = U + (size_t)i * K, s = S[order[i]];
        if (s > smax * 1e-13 && s > 0.0) {
            for (j = 0; j < k; ++j) u[j] = t[j] / s;
        } else { /* complete with a unit vector orthogonalised against u_0 .. u_{i-1} */
            int e, pass, ii;
            for (e = 0; e < k; ++e) {
                double nrm = 0.0;
                for (j = 0; j < k; ++j) u[j] = j == e ? 1.0 : 0.0;
                for (pass = 0; pass < 2; ++pass)
                    for (ii = 0; ii < i; ++ii) {
                        const double *w = U + (size_t)ii * K;
                        double d = 0.0;
                        for (j = 0; j < k; ++j) d += w[j] * u[j];
                        for (j = 0; j < k; ++j) u[j] -= d * w[j];
                    }
                for (j = 0; j < k; ++j) nrm += u[j] * u[j];
                nrm = sqrt(nrm);
                if (nrm > 0.5) {
                    for (j = 0; j < k; ++j) u[j] /= nrm;
                    break;
                }
            }
        }
    }
    for (i = 0; i < k; ++i) T[i] = S[order[i]];
    for (i = 0; i < k; ++i) S[i] = T[i];
    return LORT_OK;
}

/* Layout of the exact SVD of an (m, n) matrix, k = min(m, n). */
enum { LORT__SV_X, LORT__SV_Q, LORT__SV_R, LORT__SV_TAU, LORT__SV_T, LORT__SV_P, LORT__SV_U,
       LORT__SV_S, LORT__SV_ORD, LORT__SV_UF, LORT__SV_PF };
LORT__PRIVATE void lort__svd_exact_layout(int m, int n, lort__layout *L) {
    size_t k = (size_t)(m < n ? m : n), len = (size_t)(m < n ? n : m), kl = 0, kk = 0;
    if (!lort__mul(k, len, &kl) || !lort__mul(k, k, &kk)) L->overflow = 1;
    lort__lay_put(L, LORT__SV_X, kl);                       /* X: the k vectors being factored */
    lort__lay_put(L, LORT__SV_Q, kl);                       /* Q */
    lort__lay_put(L, LORT__SV_R, kk);                       /* R */
    lort__lay_put(L, LORT__SV_TAU, k);                        /* tau */
    lort__lay_put(L, LORT__SV_T, kk * 2);                   /* T (double) */
    lort__lay_put(L, LORT__SV_P, kk * 2);                   /* P (double) */
    lort__lay_put(L, LORT__SV_U, kk * 2);                   /* U (double) */
    lort__lay_put(L, LORT__SV_S, k * 2);                    /* S (double) */
    lort__lay_put(L, LORT__SV_ORD, k);                        /* order (int) */
    lort__lay_put(L, LORT__SV_UF, kk);                       /* U as float */
    lort__lay_put(L, LORT__SV_PF, kk);                       /* P as float */
}

/* Flips each triplet so that the largest-magnitude entry of each Vt row is positive. */
LORT__PRIVATE void lort__svd_sign(int m, int n, int r, float *U, float *Vt) {
    int i, j;
    for (i = 0; i < r; ++i) {
        float *v = Vt + (size_t)i * (size_t)n, best = 0.0f;
        for (j = 0; j < n; ++j)
            if (fabsf(v[j]) > fabsf(best)) best = v[j];
        if (best < 0.0f) {
            for (j = 0; j < n; ++j) v[j] = -v[j];
            if (U)
                for (j = 0; j < m; ++j) U[(size_t)j * (size_t)r + (size_t)i] = -U[(size_t)j * (size_t)r + (size_t)i];
        }
    }
}

/* Exact SVD core: top r triplets of W (m, n), ld ldw, into U (m, r), S (r), Vt (r, n) (Vt is
   needed: it carries the sign convention; U may be NULL). Vectors of length max(m, n) are
   reduced by Householder QR to a k x k triangle, which Jacobi diagonalises in double. */
LORT__PRIVATE lort_status lort__svd_exact(float *U, float *S, float *Vt, const float *W,
                                          size_t ldw, int m, int n, int r, int max_sweeps,
                                          int fast_qr, float *base, const lort__layout *L) {
    int k = m < n ? m : n, len = m < n ? n : m, i, j;
    size_t K = (size_t)k, N = (size_t)len, t;
    float *X = lort__lay_slot(base, L, LORT__SV_X), *Q = lort__lay_slot(base, L, LORT__SV_Q);
    float *R = lort__lay_slot(base, L, LORT__SV_R), *tau = lort__lay_slot(base, L, LORT__SV_TAU);
    double *T = (double *)(void *)lort__lay_slot(base, L, LORT__SV_T);
    double *P = (double *)(void *)lort__lay_slot(base, L, LORT__SV_P);
    double *Ud = (double *)(void *)lort__lay_slot(base, L, LORT__SV_U);
    double *Sd = (double *)(void *)lort__lay_slot(base, L, LORT__SV_S);
    int *order = (int *)(void *)lort__lay_slot(base, L, LORT__SV_ORD);
    float *Uf = lort__lay_slot(base, L, LORT__SV_UF), *Pf = lort__lay_slot(base, L, LORT__SV_PF);
    lort_status st;
    int pass;
    /* X: the k long vectors. m >= n: the columns of W (W = Q^T R, M = R); else the rows
       (W = R^T Q, M = R^T). T holds the columns of M as rows. */
    /* fast_qr: CholeskyQR2 (GEMMs) when the block is well conditioned, R = Lprod^T; else (or
       when it declines) Householder on a fresh copy */
    for (pass = fast_qr ? 0 : 1; pass < 2; ++pass) {
        for (i = 0; i < m; ++i)
            for (j = 0; j < n; ++j) {
                float w = W[(size_t)i * ldw + (size_t)j];
                if (m >= n) X[(size_t)j * N + (size_t)i] = w;
                else X[(size_t)i * N + (size_t)j] = w;
            }
        if (pass == 1) {
            lort__rowqr(k, len, X, R, Q, tau);
        } else if (lort__cholqr(k, len, X, Q, Uf, T, P, Ud, 2)) {
            for (i = 0; i < k; ++i)
                for (j = 0; j < k; ++j)
                    R[(size_t)i * K + (size_t)j] = (float)Ud[(size_t)j * K + (size_t)i];
            break;
        }
    }
    for (i = 0; i < k; ++i)
        for (j = 0; j < k; ++j)
            T[(size_t)i * K + (size_t)j] = m >= n ? (double)R[(size_t)j * K + (size_t)i] : (double)R[(size_t)i * K + (size_t)j];
    st = lort__jacobi(k, T, P, Ud, Sd, order, max_sweeps);
    if (st) return st;
    for (t = 0; t < K * K; ++t) {
        Uf[t] = (float)Ud[t];
        Pf[t] = (float)P[t];
    }
    for (i = 0; i < r; ++i) S[i] = (float)Sd[i];
    if (m >= n) { /* W = Q^T M: U = Q^T u_i, Vt = p_i */
        if (U) lort__gemm(1, 1, m, r, k, 1.0f, Q, len, Uf, k, 0.0f, U, r);
        memcpy(Vt, Pf, (size_t)r * K * sizeof(float));
    } else { /* W = M Q: U = u_i, Vt = p_i^T Q */
        if (U)
            for (i = 0; i < m; ++i)
                for (j = 0; j < r; ++j) U[(size_t)i * (size_t)r + (size_t)j] = Uf[(size_t)j * K + (size_t)i];
        lort__gemm(0, 0, r, n, k, 1.0f, Pf, k, Q, len, 0.0f, Vt, n);
    }
    lort__svd_sign(m, n, r, U, Vt);
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__svd_args(const float *W, int ldw, int m, int n, int r,
                                         const float *S) {
    size_t t;
    if (!W || !S) return LORT_ERR_NULL;
    if (m <= 0 || n <= 0 || r <= 0) return LORT_ERR_INVALID_ARG;
    if (r > (m < n ? m : n) || ldw < n) return LORT_ERR_SHAPE;
    if (!lort__mul3((size_t)m, (size_t)ldw, sizeof(float), &t)) return LORT_ERR_OVERFLOW;
    return LORT_OK;
}
/* 1 when every entry of W is finite and ||W||_F <= FLT_MAX (so that every singular value is
   representable); *fro (may be NULL) gets ||W||_F in double. */
LORT__PRIVATE int lort__svd_finite(const float *W, size_t ldw, int m, int n, double *fro) {
    int i, j;
    double ss = 0.0;
    for (i = 0; i < m; ++i) {
        const float *w = W + (size_t)i * ldw;
        if (!lort__all_finite(w, (size_t)n)) return 0;
        for (j = 0; j < n; ++j) ss += (double)w[j] * (double)w[j];
    }
    ss = sqrt(ss);
    if (fro) *fro = ss;
    return ss <= (double)FLT_MAX;
}

typedef struct lort__svd_plan {
    int exact, l, q, sweeps, no_shift;
    uint64_t seed;
} lort__svd_plan;

LORT__PRIVATE lort_status lort__svd_plan_make(int m, int n, int r, const lort_svd_opts *o,
                                              lort__svd_plan *p) {
    int k = m < n ? m : n, over;
    lort_svd_opts z;
    if (!o) {
        memset(&z, 0, sizeof(z));
        o = &z;
    }
    if (o->oversample < 0 || o->max_sweeps < 0 || o->max_sweeps > LORT_SVD_MAX_SWEEPS ||
        o->power_iters > LORT_SVD_MAX_POWER_ITERS)
        return LORT_ERR_INVALID_ARG;
    over = o->oversample ? o->oversample : (r / 2 > 10 ? r / 2 : 10);
    p->l = over >= k - r ? k : r + over;
    p->q = o->power_iters == 0 ? 5 : (o->power_iters < 0 ? 0 : o->power_iters);
    p->sweeps = o->max_sweeps ? o->max_sweeps : 60;
    p->seed = o->seed;
    p->no_shift = o->no_shift != 0;
    p->exact = o->exact || p->l >= k; /* a probe block as wide as the matrix buys nothing */
    return LORT_OK;
}

/* The effective options of a plan, written back (desc_resolve shows them). */
LORT__PRIVATE lort_status lort__svd_opts_resolve(int m, int n, int r, lort_svd_opts *o) {
    lort__svd_plan p;
    lort_status st = lort__svd_plan_make(m, n, r, o, &p);
    if (st) return st;
    o->exact = p.exact;
    o->oversample = p.l - r;
    o->power_iters = p.q > 0 ? p.q : -1;
    o->max_sweeps = p.sweeps;
    return LORT_OK;
}

/* Layout of the randomized SVD: probes/projections, the range basis, then the exact SVD of the
   (l, n) projection and its left vectors. */
enum { LORT__RS_Y, LORT__RS_Z, LORT__RS_QM, LORT__RS_R, LORT__RS_TAU, LORT__RS_UB, LORT__RS_G,
       LORT__RS_LD, LORT__RS_V, LORT__RS_SUB };
LORT__PRIVATE void lort__svd_layout(int m, int n, int r, const lort__svd_plan *p,
                                    lort__layout *L, lort__layout *sub) {
    size_t l = (size_t)p->l, lm = 0, ln = 0, ll = 0, lr = 0, lmax;
    lort__lay_init(L);
    lort__lay_init(sub);
    if (p->exact) {
        lort__svd_exact_layout(m, n, L);
        return;
    }
    lmax = (size_t)(m > n ? m : n);
    if (!lort__mul(l, (size_t)m, &lm) || !lort__mul(l, (size_t)n, &ln) ||
        !lort__mul(l, l, &ll) || !lort__mul(l, (size_t)r, &lr) || !lort__mul(l, lmax, &lmax))
        L->overflow = 1;
    lort__lay_put(L, LORT__RS_Y, lm);   /* Y^T (l, m): W times probes, then its QR input */
    lort__lay_put(L, LORT__RS_Z, ln);   /* Z^T (l, n): probes, then W^T Q, then B */
    lort__lay_put(L, LORT__RS_QM, lm);   /* Q^T (l, m): orthonormal basis of the range */
    lort__lay_put(L, LORT__RS_R, ll);   /* R */
    lort__lay_put(L, LORT__RS_TAU, l);    /* tau */
    lort__lay_put(L, LORT__RS_UB, lr);   /* U_B (l, r) */
    lort__lay_put(L, LORT__RS_G, ll);   /* Gram matrix, then L^-1 (CholeskyQR2) */
    lort__lay_put(L, LORT__RS_LD, ll * 4); /* L and L^-1 in double */
    lort__lay_put(L, LORT__RS_V, l * 4);  /* 2 x l doubles: the shift's inverse iteration */
    lort__svd_exact_layout(p->l, n, sub);
    if (sub->overflow) L->overflow = 1;
    lort__lay_put(L, LORT__RS_SUB, sub->end / sizeof(float)); /* the exact SVD of B */
}

LORT_DEF lort_status lort_svd_truncated_workspace_size(int m, int n, int r,
                                                       const lort_svd_opts *opts,
                                                       size_t *bytes) {
    lort__svd_plan p;
    lort__layout L, sub;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if (m <= 0 || n <= 0 || r <= 0) return LORT_ERR_INVALID_ARG;
    if (r > (m < n ? m : n)) return LORT_ERR_SHAPE;
    if ((st = lort__svd_plan_make(m, n, r, opts, &p))) return st;
    lort__svd_layout(m, n, r, &p, &L, &sub);
    return lort__lay_bytes(&L, bytes);
}

LORT_DEF lort_status lort_svd_truncated(float *U, float *S, float *Vt, const float *W, int ldw,
                                        int m, int n, int r, const lort_svd_opts *opts,
                                        void *work, size_t work_size) {
    lort__svd_plan p;
    lort__layout L, sub;
    lort_status st;
    float *base, *Y, *Z, *Qm, *R, *tau, *UB, *V2, *G;
    double *Ld, *Vv, alpha = 0.0, prev = -1.0, fro = 0.0, bound;
    float cs = 1.0f; /* power-of-two scale of the probe blocks multiplied by W (see below) */
    size_t ld = (size_t)ldw;
    int it, l, rr = r;
    size_t i;
    lort_rng rng;
    if ((st = lort__svd_args(W, ldw, m, n, r, S))) return st;
    if (!Vt) return LORT_ERR_NULL;
    if ((st = lort__svd_plan_make(m, n, r, opts, &p))) return st;
    lort__svd_layout(m, n, r, &p, &L, &sub);
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    if (!lort__svd_finite(W, ld, m, n, &fro)) return LORT_ERR_NONFINITE;
    base = lort__lay_base(work);
    l = p.l;
    if (p.exact) {
        return lort__svd_exact(U, S, Vt, W, ld, m, n, rr, p.sweeps, 0, base, &L);
    }
    Y = lort__lay_slot(base, &L, LORT__RS_Y);
    Z = lort__lay_slot(base, &L, LORT__RS_Z);
    Qm = lort__lay_slot(base, &L, LORT__RS_QM);
    R = lort__lay_slot(base, &L, LORT__RS_R);
    tau = lort__lay_slot(base, &L, LORT__RS_TAU);
    UB = lort__lay_slot(base, &L, LORT__RS_UB);
    V2 = lort__lay_slot(base, &L, LORT__RS_SUB);
    G = lort__lay_slot(base, &L, LORT__RS_G);
    Ld = (double *)(void *)lort__lay_slot(base, &L, LORT__RS_LD);
    Vv = (double *)(void *)lort__lay_slot(base, &L, LORT__RS_V);
    lort_rng_seed(&rng, p.seed);
    /* A block with entries <= 1 times W^T has entries <= sqrt(n) ||W||_F, which may exceed
       FLT_MAX even though ||W||_F does not: such blocks are scaled by cs (a power of two, exact)
       first. Q^T W stays below ||W||_F (Q orthonormal). */
    bound = 4.0 * sqrt((double)n) * fro;
    while (bound * (double)cs > (double)FLT_MAX) cs *= 0.5f;
    lort__fill_probes(&rng, Z, (size_t)l * (size_t)n);
    for (it = 0; it < l; ++it) Vv[it] = (double)lort_rng_uniform(&rng) + 0.5;
    if (cs < 1.0f)
        for (i = 0; i < (size_t)l * (size_t)n; ++i) Z[i] *= cs;
    lort__gemm(0, 1, l, m, n, 1.0f, Z, n, W, ldw, 0.0f, Y, m);   /* Y^T = Omega^T W^T */
    if (!lort__cholqr(l, m, Y, Qm, G, Ld, Ld + (size_t)l * (size_t)l, NULL, p.q ? 1 : 2))
        lort__rowqr(l, m, Y, R, Qm, tau);
    for (it = 0; it < p.q; ++it) { /* Q <- qr((W W^T - alpha) Q): re-orthonormalised once per
                                       power step, which squares the conditioning of the block:
                                       harmless once the previous step has orthonormalised it */
        float c;
        double t2;
        lort__gemm(0, 0, l, n, m, 1.0f, Qm, m, W, ldw, 0.0f, Z, n); /* Z^T = Q^T W */
        c = lort__pow2_normalizer(Z, (size_t)l * (size_t)n); /* Z to max ~1 so that the */
        for (i = 0; i < (size_t)l * (size_t)n; ++i) Z[i] *= c; /* ~W^2 below stays finite */
        /* the dynamic shift (see MATH, svd): t2 is the smallest squared Ritz value of this
           step. While it still grows (> 5% a step) the tail has not converged and alpha moves
           halfway to it; once it stalls alpha stays put. t2 < 0: no estimate (no_shift, or a
           singular Gram matrix), so alpha cannot move in this step or the next. */
        t2 = p.no_shift ? -1.0
                        : lort__gram_min_eig(l, n, Z, G, Ld, Vv, Vv + l) / ((double)c * (double)c);
        if (prev > 0.0 && t2 > 1.05 * prev && t2 > alpha)
            alpha = 0.5 * (alpha + t2);
        prev = t2;
        if (cs < 1.0f)
            for (i = 0; i < (size_t)l * (size_t)n; ++i) Z[i] *= cs;
        if (alpha > 0.0) {
            float a = -(float)(alpha * (double)c * (double)cs); /* Y = c cs (W W^T Q - alpha Q) */
            for (i = 0; i < (size_t)l * (size_t)m; ++i) Y[i] = a * Qm[i];
        }
        lort__gemm(0, 1, l, m, n, 1.0f, Z, n, W, ldw, alpha > 0.0 ? 1.0f : 0.0f, Y, m);
        if (!lort__cholqr(l, m, Y, Qm, G, Ld, Ld + (size_t)l * (size_t)l, NULL,
                          it + 1 < p.q ? 1 : 2))
            lort__rowqr(l, m, Y, R, Qm, tau);
    }
    lort__gemm(0, 0, l, n, m, 1.0f, Qm, m, W, ldw, 0.0f, Z, n);     /* B = Q^T W (l, n) */
    st = lort__svd_exact(UB, S, Vt, Z, (size_t)n, l, n, rr, p.sweeps, 1, V2, &sub);
    if (st) return st;
    if (U) lort__gemm(1, 0, m, rr, l, 1.0f, Qm, m, UB, rr, 0.0f, U, rr); /* U = Q U_B */
    return LORT_OK;
}

LORT_DEF lort_status lort_svd_jacobi_workspace_size(int m, int n, size_t *bytes) {
    lort__layout L;
    if (!bytes) return LORT_ERR_NULL;
    if (m <= 0 || n <= 0) return LORT_ERR_INVALID_ARG;
    lort__lay_init(&L);
    lort__svd_exact_layout(m, n, &L);
    return lort__lay_bytes(&L, bytes);
}

LORT_DEF lort_status lort_svd_jacobi(float *U, float *S, float *Vt, const float *W, int ldw,
                                     int m, int n, int max_sweeps, void *work,
                                     size_t work_size) {
    lort__layout L;
    lort_status st;
    int k = m < n ? m : n;
    if ((st = lort__svd_args(W, ldw, m, n, k > 0 ? k : 1, S))) return st;
    if (!Vt) return LORT_ERR_NULL;
    if (max_sweeps < 0 || max_sweeps > LORT_SVD_MAX_SWEEPS) return LORT_ERR_INVALID_ARG;
    lort__lay_init(&L);
    lort__svd_exact_layout(m, n, &L);
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    if (!lort__svd_finite(W, (size_t)ldw, m, n, NULL)) return LORT_ERR_NONFINITE;
    return lort__svd_exact(U, S, Vt, W, (size_t)ldw, m, n, k, max_sweeps ? max_sweeps : 60, 0,
                           lort__lay_base(work), &L);
}

#endif /* LORT__HAS_SVD */

// >>lora ================================================================================= impl
#if LORT__HAS_LOWRANK

/* Shared by lora and loraxs: validated dims and the resolved scale. */
LORT__PRIVATE lort_status lort__lowrank_check(int d_in, int d_out, int r, float alpha,
                                              float dropout, float *scale, int rslora) {
    size_t t;
    if (d_in <= 0 || d_out <= 0 || r <= 0) return LORT_ERR_INVALID_ARG;
    if (!lort__finite(alpha) || !(dropout >= 0.0f && dropout < 1.0f)) return LORT_ERR_INVALID_ARG;
    if (!lort__mul((size_t)r, (size_t)d_in + (size_t)d_out, &t) || !lort__mul(t, sizeof(float), &t) ||
        !lort__mul3((size_t)d_in, (size_t)d_out, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    if (scale) {
        float a = lort__is_zero(alpha) ? (float)r : alpha;
        *scale = rslora ? a / sqrtf((float)r) : a / (float)r;
    }
    return LORT_OK;
}

/* Workspace and cache of lora (and loraxs, which adds slots) at n rows. */
enum { LORT__LR_H, LORT__LR_G, LORT__LR_XD, LORT__LR_T, LORT__LR_M };
LORT__PRIVATE void lort__lowrank_layout(int d_in, int d_out, int r, float dropout, int n,
                                        int xs, lort__layout *work, lort__layout *cache) {
    size_t nr = 0, nd = 0, rd = 0;
    if (!lort__mul((size_t)n, (size_t)r, &nr)) work->overflow = cache->overflow = 1;
    if (!lort__mul((size_t)n, (size_t)d_in, &nd)) work->overflow = 1;
    if (xs && !lort__mul((size_t)r, (size_t)(d_in > d_out ? d_in : d_out), &rd)) work->overflow = 1;
    lort__lay_put(work, LORT__LR_H, nr); /* H = drop(x) A^T when there is no cache */
    lort__lay_put(work, LORT__LR_G, nr);                        /* dy B, and H R^T for loraxs */
    lort__lay_put(work, LORT__LR_XD, dropout > 0.0f ? nd : 0);   /* drop(x), then the masked dx */
    lort__lay_put(work, LORT__LR_T, xs ? nr : 0);               /* loraxs: dH1 = dH2 R */
    lort__lay_put(work, LORT__LR_M, xs ? rd : 0);               /* loraxs merge: R A */
    lort__lay_add(cache, nr);                       /* H */
}

/* The low-rank pipeline shared by lora (R = NULL), loraxs (R), tt_rep (on its materialised
   trains) and the joint families cp and tucker (at, bt): one body for all. One call's fixed
   inputs travel in a struct, set by lort__lowrank_init and then the factors. */
typedef struct lort__lowrank {
    int d_in, d_out, r;
    float s, p;                /* scale; dropout probability (0 = none) */
    uint64_t seed;             /* dropout seed */
    const float *R, *A, *B;    /* R (r, r) or NULL; A (r, d_in); B (d_out, r) */
    int at, bt;                /* A stored transposed (d_in, r); B stored transposed (r, d_out) */
    float *base;               /* the aligned workspace, slots LORT__LR_* of L */
    const lort__layout *L;
} lort__lowrank;
LORT__PRIVATE void lort__lowrank_init(lort__lowrank *P, int d_in, int d_out, int r, float s,
                                      float p, uint64_t seed, float *base,
                                      const lort__layout *L) {
    P->d_in = d_in;
    P->d_out = d_out;
    P->r = r;
    P->s = s;
    P->p = p;
    P->seed = seed;
    P->R = P->A = P->B = NULL;
    P->at = P->bt = 0;
    P->base = base;
    P->L = L;
}

/* ---- decode path: n <= LORT__DECODE_ROWS rows --------------------------------------------
   At a few rows a GEMM call costs more in dispatch and packing than the work, and every
   factor is read once: fused loops that stream A and B are faster (lort__decode_use). At
   decode an engine's adapters (every layer, every site) do not stay in cache, so the bound is
   the memory bandwidth with which A and B stream in; the loops must keep up with it and leave
   the prefetchers one sequential stream at a time. H = X A^T: four rows of A against one row
   of x at a time (x is loaded once for the four), 16 partial sums per row. y += s H B^T with
   B (d_out, r) row-major: eight rows of B (eight outputs) at a time, each row's products
   summed across the vector by a transpose-add of the eight (no scalar reduction per output).
   With GCC or Clang and a vector unit (LORT__GEMM_SIMD) these loops are written in the
   compilers' generic 8-float vector type (SSE: two halves; AVX: one register); elsewhere, or
   with LORT_GEMM_PORTABLE, in plain C with partial sums that compilers vectorise. */
#define LORT__DECODE_ROWS 8
/* Measured (n 1 to 8, d 1024 and 4096, r 8 to 64, one thread, hot cache): the loops beat the
   built-in GEMM at every n <= 8 (but r >= 32 at n <= 2, within 1.3x), and OpenBLAS's sgemm at
   n <= 4 (1.0 to 2.6x faster); at n = 8 they are up to 1.2x slower. */
LORT__PRIVATE int lort__decode_use(int n, int r) {
    (void)r;
#if defined(LORT_NO_BLAS) && !defined(LORT_SGEMM)
    return n <= LORT__DECODE_ROWS;
#else
    return n <= 4;
#endif
}
/* sum_j a[j] b[j], 32 partial sums (enough independent chains to stream at L1/L2 speed) */
LORT__PRIVATE float lort__dot8(const float *LORT_RESTRICT a, const float *LORT_RESTRICT b,
                               int len) {
    float acc[32], sum;
    int j = 0, t;
    for (t = 0; t < 32; ++t) acc[t] = 0.0f;
    for (; j + 32 <= len; j += 32)
        for (t = 0; t < 32; ++t) acc[t] += a[j + t] * b[j + t];
    for (t = 0; t < 16; ++t) acc[t] += acc[t + 16];
    for (t = 0; t < 8; ++t) acc[t] += acc[t + 8];
    sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < len; ++j) sum += a[j] * b[j];
    return sum;
}
#if (defined(__GNUC__) || defined(__clang__)) && defined(LORT__GEMM_SIMD) && \
    !defined(LORT_GEMM_PORTABLE)
#define LORT__DEC_VEC 1
#if defined(__GNUC__) && !defined(__clang__) && !defined(LORT_GEMM_NO_FMA)
#define LORT__DEC_PRAGMA 1
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
#endif
typedef float lort__v8 __attribute__((vector_size(32)));
typedef int lort__v8i __attribute__((vector_size(32)));
/* (vectors travel by pointer: passing a 32-byte vector by value changes the ABI on SSE) */
#define LORT__V8_LD(v, p) memcpy(&(v), (p), sizeof(v))
LORT__PRIVATE float lort__v8_sum(const lort__v8 *v) {
    const lort__v8 w = *v;
    return ((w[0] + w[4]) + (w[1] + w[5])) + ((w[2] + w[6]) + (w[3] + w[7]));
}
/* out lane t = the sum of the lanes of v[t]: pairwise sums within 128-bit halves (twice),
   then the two halves */
LORT__PRIVATE void lort__v8_red8(lort__v8 *out, const lort__v8 *v) {
    lort__v8 s01, s23, s45, s67, t0, t1;
#if defined(__clang__)
#define LORT__SH(a, b, m) __builtin_shufflevector(a, b, m)
#define LORT__ME 0, 2, 8, 10, 4, 6, 12, 14
#define LORT__MO 1, 3, 9, 11, 5, 7, 13, 15
#define LORT__ML 0, 1, 2, 3, 8, 9, 10, 11
#define LORT__MH 4, 5, 6, 7, 12, 13, 14, 15
#else
    const lort__v8i me = {0, 2, 8, 10, 4, 6, 12, 14}, mo = {1, 3, 9, 11, 5, 7, 13, 15};
    const lort__v8i ml = {0, 1, 2, 3, 8, 9, 10, 11}, mh = {4, 5, 6, 7, 12, 13, 14, 15};
#define LORT__SH(a, b, m) __builtin_shuffle(a, b, m)
#define LORT__ME me
#define LORT__MO mo
#define LORT__ML ml
#define LORT__MH mh
#endif
#define LORT__HADD8(a, b) (LORT__SH(a, b, LORT__ME) + LORT__SH(a, b, LORT__MO))
    s01 = LORT__HADD8(v[0], v[1]);
    s23 = LORT__HADD8(v[2], v[3]);
    s45 = LORT__HADD8(v[4], v[5]);
    s67 = LORT__HADD8(v[6], v[7]);
    t0 = LORT__HADD8(s01, s23);
    t1 = LORT__HADD8(s45, s67);
    *out = LORT__SH(t0, t1, LORT__ML) + LORT__SH(t0, t1, LORT__MH);
#undef LORT__HADD8
#undef LORT__SH
#undef LORT__ME
#undef LORT__MO
#undef LORT__ML
#undef LORT__MH
}
/* Prefetch distance of the decode loops, floats (4 KiB): far enough ahead to hide the memory
   latency behind the streaming of A and B, measured at d 1024 and 4096 (bench_serve). */
#define LORT__DECODE_PF 1024
/* out[k] = A_k . x for the kb <= 4 rows of A lda floats apart; prefetches ahead, up to lim
   floats from A */
LORT__PRIVATE void lort__dec_dots(float *out, const float *A, size_t lda, const float *x,
                                  int len, int kb, size_t lim) {
    const lort__v8 zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    lort__v8 s[8], x0, x1, v;
    int j = 0, k, t;
    for (t = 0; t < 8; ++t) s[t] = zero;
    if (kb == 4) { /* s[2k], s[2k + 1]: row k, 16 partial sums */
        for (; j + 16 <= len; j += 16) {
            for (k = 0; k < 4; ++k) {
                size_t q = (size_t)k * lda + (size_t)j + LORT__DECODE_PF;
                if (q < lim) __builtin_prefetch(A + q);
            }
            LORT__V8_LD(x0, x + j);
            LORT__V8_LD(x1, x + j + 8);
            for (k = 0; k < 4; ++k) {
                LORT__V8_LD(v, A + (size_t)k * lda + (size_t)j);
                s[2 * k] += v * x0;
                LORT__V8_LD(v, A + (size_t)k * lda + (size_t)j + 8);
                s[2 * k + 1] += v * x1;
            }
        }
        for (k = 0; k < 4; ++k) {
            const float *p = A + (size_t)k * lda;
            int i;
            v = s[2 * k] + s[2 * k + 1];
            out[k] = lort__v8_sum(&v);
            for (i = j; i < len; ++i) out[k] += p[i] * x[i];
        }
        return;
    }
    for (k = 0; k < kb; ++k) { /* one row: 32 partial sums */
        const float *p = A + (size_t)k * lda;
        for (t = 0; t < 4; ++t) s[t] = zero;
        for (j = 0; j + 32 <= len; j += 32)
            for (t = 0; t < 4; ++t) {
                size_t q = (size_t)k * lda + (size_t)(j + 8 * t) + LORT__DECODE_PF;
                if (t % 2 == 0 && q < lim) __builtin_prefetch(A + q);
                LORT__V8_LD(v, p + j + 8 * t);
                LORT__V8_LD(x0, x + j + 8 * t);
                s[t] += v * x0;
            }
        v = (s[0] + s[1]) + (s[2] + s[3]);
        out[k] = lort__v8_sum(&v);
        for (; j < len; ++j) out[k] += p[j] * x[j];
    }
}
/* Two rows of x at once (four rows of A loaded once for both): o0[k] = A_k . x0,
   o1[k] = A_k . x1, 8 partial sums per dot product; kb < 4 falls back to one row at a time. */
LORT__PRIVATE void lort__dec_dots2(float *o0, float *o1, const float *A, size_t lda,
                                   const float *x0, const float *x1, int len, int kb,
                                   size_t lim) {
    const lort__v8 zero = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    lort__v8 s[8], u0, u1, v;
    int j = 0, k;
    if (kb != 4) {
        lort__dec_dots(o0, A, lda, x0, len, kb, lim);
        lort__dec_dots(o1, A, lda, x1, len, kb, lim);
        return;
    }
    for (k = 0; k < 8; ++k) s[k] = zero; /* s[k]: row k with x0, s[4 + k]: with x1 */
    for (; j + 8 <= len; j += 8) {
        if (j % 16 == 0)
            for (k = 0; k < 4; ++k) {
                size_t q = (size_t)k * lda + (size_t)j + LORT__DECODE_PF;
                if (q < lim) __builtin_prefetch(A + q);
            }
        LORT__V8_LD(u0, x0 + j);
        LORT__V8_LD(u1, x1 + j);
        for (k = 0; k < 4; ++k) {
            LORT__V8_LD(v, A + (size_t)k * lda + (size_t)j);
            s[k] += v * u0;
            s[4 + k] += v * u1;
        }
    }
    for (k = 0; k < 4; ++k) {
        const float *p = A + (size_t)k * lda;
        int i;
        o0[k] = lort__v8_sum(&s[k]);
        o1[k] = lort__v8_sum(&s[4 + k]);
        for (i = j; i < len; ++i) {
            o0[k] += p[i] * x0[i];
            o1[k] += p[i] * x1[i];
        }
    }
}
/* y (d_out) += s B h, B (d_out, r) row-major, r a multiple of 8: eight outputs at a time */
LORT__PRIVATE void lort__dec_bh8(float *LORT_RESTRICT y, const float *LORT_RESTRICT B,
                                 const float *LORT_RESTRICT h, int d_out, int r, float s) {
    lort__v8 acc[8], hc, v, red;
    size_t rr = (size_t)r;
    int o = 0, t, c;
    size_t lim = (size_t)d_out * rr, q;
    for (; o + 8 <= d_out; o += 8) {
        const float *b = B + (size_t)o * rr;
        for (t = 0; t < 8 * r; t += 16) /* the next lines of B, one per 64 bytes */
            if ((q = (size_t)o * rr + (size_t)t + LORT__DECODE_PF) < lim) __builtin_prefetch(B + q);
        LORT__V8_LD(hc, h);
        for (t = 0; t < 8; ++t) {
            LORT__V8_LD(v, b + (size_t)t * rr);
            acc[t] = v * hc;
        }
        for (c = 8; c < r; c += 8) {
            LORT__V8_LD(hc, h + c);
            for (t = 0; t < 8; ++t) {
                LORT__V8_LD(v, b + (size_t)t * rr + (size_t)c);
                acc[t] += v * hc;
            }
        }
        lort__v8_red8(&red, acc);
        LORT__V8_LD(v, y + o);
        v += s * red;
        memcpy(y + o, &v, sizeof v);
    }
    for (; o < d_out; ++o) {
        const float *b = B + (size_t)o * rr;
        float a = 0.0f;
        for (c = 0; c < r; ++c) a += b[c] * h[c];
        y[o] += s * a;
    }
}
#endif /* LORT__DEC_VEC */
/* y (d_out) += s B h, B (d_out, r) row-major: one output per iteration, r fixed */
#define LORT__DECODE_BH(RR)                                                                   \
    for (o = 0; o < d_out; ++o) {                                                             \
        const float *b = B + (size_t)o * (size_t)(RR);                                        \
        float acc = 0.0f;                                                                     \
        for (k = 0; k < (RR); ++k) acc += b[k] * h[k];                                        \
        y[o] += s * acc;                                                                      \
    }
LORT__PRIVATE void lort__decode_bh(float *LORT_RESTRICT y, const float *LORT_RESTRICT B,
                                   const float *LORT_RESTRICT h, int d_out, int r, float s) {
    int o, k;
#ifdef LORT__DEC_VEC
    if (r % 8 == 0) {
        lort__dec_bh8(y, B, h, d_out, r, s);
        return;
    }
#endif
    switch (r) {
    case 1: LORT__DECODE_BH(1) break;
    case 2: LORT__DECODE_BH(2) break;
    case 4: LORT__DECODE_BH(4) break;
    case 8: LORT__DECODE_BH(8) break;
    case 16: LORT__DECODE_BH(16) break;
    case 32: LORT__DECODE_BH(32) break;
    default: LORT__DECODE_BH(r) break;
    }
}
#undef LORT__DECODE_BH
/* The lowrank forward at n <= LORT__DECODE_ROWS rows, as lort__lowrank_forward_t: H = X A^T
   (kept: it is the cache), H2 = H R^T (loraxs), y += s H2 B^T. at, bt: A (d_in, r), B (r,
   d_out) stored transposed. Row i reads x + rows[i] d_in and adds to y + rows[i] d_out (rows
   NULL: row i), H and H2 are (n, r): mixed batches run a segment's scattered rows in place.
   The factors are streamed once: each piece (four rows of A, a block of LORT__DECODE_BLOCK
   floats of B) serves all n rows while it is in L1. */
#define LORT__DECODE_BLOCK 4096
LORT__PRIVATE void lort__decode_rows(int d_in, int d_out, int r, float s, float *y,
                                     const float *x, const int *rows, const float *R,
                                     const float *A, const float *B, int n, float *H, float *H2,
                                     int at, int bt) {
    int i, j, k, j0, jb;
    const float *Hr = H;
#define LORT__XR(i) (x + (size_t)(rows ? rows[i] : (i)) * (size_t)d_in)
#define LORT__YR(i) (y + (size_t)(rows ? rows[i] : (i)) * (size_t)d_out)
    if (!at) { /* H[i, k] = A_k . x_i, four rows of A at a time */
        for (k = 0; k < r; k += 4)
            for (i = 0; i < n; ++i) {
#ifdef LORT__DEC_VEC
                if (i + 1 < n) { /* two rows of x per pass over the four rows of A */
                    lort__dec_dots2(H + (size_t)i * (size_t)r + (size_t)k,
                                    H + (size_t)(i + 1) * (size_t)r + (size_t)k,
                                    A + (size_t)k * (size_t)d_in, (size_t)d_in, LORT__XR(i),
                                    LORT__XR(i + 1), d_in, r - k < 4 ? r - k : 4,
                                    (size_t)(r - k) * (size_t)d_in);
                    ++i;
                    continue;
                }
                lort__dec_dots(H + (size_t)i * (size_t)r + (size_t)k, A + (size_t)k * (size_t)d_in,
                               (size_t)d_in, LORT__XR(i), d_in, r - k < 4 ? r - k : 4,
                               (size_t)(r - k) * (size_t)d_in);
#else
                for (j = k; j < r && j < k + 4; ++j)
                    H[(size_t)i * (size_t)r + (size_t)j] =
                        lort__dot8(A + (size_t)j * (size_t)d_in, LORT__XR(i), d_in);
#endif
            }
    } else { /* H_i = sum_j x_i[j] A_j, A (d_in, r), in blocks of rows of A */
        memset(H, 0, (size_t)n * (size_t)r * sizeof(float));
        jb = LORT__DECODE_BLOCK / r > 0 ? LORT__DECODE_BLOCK / r : 1;
        for (j0 = 0; j0 < d_in; j0 += jb)
            for (i = 0; i < n; ++i) {
                const float *xi = LORT__XR(i);
                for (j = j0; j < d_in && j < j0 + jb; ++j)
                    lort__axpy(H + (size_t)i * (size_t)r, xi[j], A + (size_t)j * (size_t)r,
                               (size_t)r);
            }
    }
    if (R) { /* H2_i = H_i R^T */
        for (i = 0; i < n; ++i)
            for (k = 0; k < r; ++k)
                H2[(size_t)i * (size_t)r + (size_t)k] =
                    lort__dot8(R + (size_t)k * (size_t)r, H + (size_t)i * (size_t)r, r);
        Hr = H2;
    }
    if (!bt) { /* y_i += s B h_i, B (d_out, r), in blocks of rows of B */
        jb = LORT__DECODE_BLOCK / r > 0 ? LORT__DECODE_BLOCK / r : 1;
        jb = n == 1 ? d_out : jb >= 8 ? jb & ~7 : jb; /* one row: one stream, no blocks */
        for (j0 = 0; j0 < d_out; j0 += jb)
            for (i = 0; i < n; ++i)
                lort__decode_bh(LORT__YR(i) + (size_t)j0, B + (size_t)j0 * (size_t)r,
                                Hr + (size_t)i * (size_t)r, d_out - j0 < jb ? d_out - j0 : jb, r,
                                s);
    } else { /* y_i += s sum_k h_i[k] B_k, B (r, d_out) */
        for (k = 0; k < r; ++k)
            for (i = 0; i < n; ++i)
                lort__axpy(LORT__YR(i), s * Hr[(size_t)i * (size_t)r + (size_t)k],
                           B + (size_t)k * (size_t)d_out, (size_t)d_out);
    }
#undef LORT__XR
#undef LORT__YR
}
#ifdef LORT__DEC_PRAGMA
#pragma GCC pop_options
#endif
/* lort__decode_rows on rows 0 .. n-1 */
LORT__PRIVATE void lort__decode_lowrank(int d_in, int d_out, int r, float s, float *y,
                                        const float *x, const float *R, const float *A,
                                        const float *B, int n, float *H, float *H2, int at,
                                        int bt) {
    lort__decode_rows(d_in, d_out, r, s, y, x, NULL, R, A, B, n, H, H2, at, bt);
}

/* forward:  H = drop(x) A^T -> H (the cache or a work slot);  (loraxs: H2 = H R^T);
   y += s H2 B^T. */
LORT__PRIVATE void lort__lowrank_forward(const lort__lowrank *P, float *y, const float *x, int n,
                                         float *H) {
    const float *xin = x;
    int d_in = P->d_in, d_out = P->d_out, r = P->r;
    if (P->p > 0.0f) {
        float *xd = lort__lay_slot(P->base, P->L, LORT__LR_XD);
        lort__dropout(P->seed, P->p, n, d_in, xd, x);
        xin = xd;
    }
    if (lort__decode_use(n, r)) { /* decode: fused loops, no GEMM call */
        lort__decode_lowrank(d_in, d_out, r, P->s, y, xin, P->R, P->A, P->B, n, H,
                             P->R ? lort__lay_slot(P->base, P->L, LORT__LR_G) : NULL, P->at,
                             P->bt);
        return;
    }
    lort__gemm(0, !P->at, n, r, d_in, 1.0f, xin, d_in, P->A, P->at ? r : d_in, 0.0f, H,
               r);                                                              /* H = Xd A^T */
    if (P->R) {
        float *H2 = lort__lay_slot(P->base, P->L, LORT__LR_G);
        lort__gemm(0, 1, n, r, r, 1.0f, H, r, P->R, r, 0.0f, H2, r);             /* H2 = H R^T */
        H = H2;
    }
    lort__gemm(0, !P->bt, n, d_out, r, P->s, H, r, P->B, P->bt ? d_out : r, 1.0f, y,
               d_out);                                                          /* y += s H B^T */
}

/* backward: G = s dy B;  lora: dB += s dy^T H, dA += G^T Xd;  loraxs: dR += G^T H, G <- G R;
   then dx += drop(G A).  H comes from the cache (Hc) or is recomputed. With at, bt, dA and dB
   have A's and B's stored shapes. */
LORT__PRIVATE void lort__lowrank_backward(const lort__lowrank *P, float *dx, float *dA, float *dB,
                                          float *dR, const float *dy, const float *x, int n,
                                          const float *Hc) {
    const float *xin = x, *H = Hc, *A = P->A, *B = P->B;
    int d_in = P->d_in, d_out = P->d_out, r = P->r, at = P->at, bt = P->bt;
    float s = P->s, *G = lort__lay_slot(P->base, P->L, LORT__LR_G), *xd = NULL;
    int need_h = dB || dR, need_xd = P->p > 0.0f && (dA || !Hc) && (need_h || dA);
    int lda = at ? r : d_in, ldb = bt ? d_out : r;
    if (need_xd) {
        xd = lort__lay_slot(P->base, P->L, LORT__LR_XD);
        lort__dropout(P->seed, P->p, n, d_in, xd, x);
        xin = xd;
    }
    if (!H && need_h) {
        float *Hw = lort__lay_slot(P->base, P->L, LORT__LR_H);
        lort__gemm(0, !at, n, r, d_in, 1.0f, xin, d_in, A, lda, 0.0f, Hw, r);
        H = Hw;
    }
    if (dB) {
        if (bt) lort__gemm(1, 0, r, d_out, n, s, H, r, dy, d_out, 1.0f, dB, d_out); /* += s H^T dy */
        else lort__gemm(1, 0, d_out, r, n, s, dy, d_out, H, r, 1.0f, dB, r);        /* += s dy^T H */
    }
    if (!(dA || dR || dx)) return;
    lort__gemm(0, bt, n, r, d_out, s, dy, d_out, B, ldb, 0.0f, G, r);          /* G = s dy B */
    if (dA) {
        if (at) lort__gemm(1, 0, d_in, r, n, 1.0f, xin, d_in, G, r, 1.0f, dA, r); /* += Xd^T G */
        else lort__gemm(1, 0, r, d_in, n, 1.0f, G, r, xin, d_in, 1.0f, dA, d_in); /* += G^T Xd */
    }
    if (P->R) {
        float *G2 = lort__lay_slot(P->base, P->L, LORT__LR_T);
        if (dR) lort__gemm(1, 0, r, r, n, 1.0f, G, r, H, r, 1.0f, dR, r);     /* dR += G^T H */
        if (!dx) return;
        lort__gemm(0, 0, n, r, r, 1.0f, G, r, P->R, r, 0.0f, G2, r);          /* G2 = G R */
        G = G2;
    }
    if (!dx) return;
    if (P->p > 0.0f) {
        float *t = lort__lay_slot(P->base, P->L, LORT__LR_XD);
        lort__gemm(0, at, n, d_in, r, 1.0f, G, r, A, lda, 0.0f, t, d_in);      /* T = G A */
        lort__dropout_add(P->seed, P->p, n, d_in, dx, t);                       /* dx += drop(T) */
    } else {
        lort__gemm(0, at, n, d_in, r, 1.0f, G, r, A, lda, 1.0f, dx, d_in);      /* dx += G A */
    }
}

#if LORT__HAS_LORA

LORT__PRIVATE lort_status lort__lora_check(const lort_lora_desc *d, float *scale) {
    if (!d) return LORT_ERR_NULL;
    if (d->init != LORT_LORA_INIT_DEFAULT && d->init != LORT_LORA_INIT_GAUSSIAN)
        return LORT_ERR_INVALID_ARG;
    return lort__lowrank_check(d->d_in, d->d_out, d->r, d->alpha, d->dropout, scale, d->rslora);
}

LORT_DEF lort_status lort_lora_desc_resolve(const lort_lora_desc *desc, lort_lora_desc *out) {
    lort_status st;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__lora_check(desc, NULL))) return st;
    *out = *desc;
    if (lort__is_zero(out->alpha)) out->alpha = (float)out->r;
    return LORT_OK;
}
LORT_DEF lort_status lort_lora_scale(const lort_lora_desc *desc, float *scale) {
    if (!scale) return LORT_ERR_NULL;
    return lort__lora_check(desc, scale);
}
LORT_DEF lort_status lort_lora_param_count(const lort_lora_desc *desc, size_t *count) {
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__lora_check(desc, NULL))) return st;
    *count = (size_t)desc->r * ((size_t)desc->d_in + (size_t)desc->d_out);
    return LORT_OK;
}

/* Builds both layouts after validating desc and n; used by size queries and kernels. */
LORT__PRIVATE lort_status lort__lora_plan(const lort_lora_desc *d, int n, float *scale,
                                          lort__layout *work, lort__layout *cache) {
    lort_status st;
    if ((st = lort__lora_check(d, scale))) return st;
    if ((st = lort__rows_check(n, d->d_in, d->d_out))) return st;
    lort__lay_init(work);
    lort__lay_init(cache);
    lort__lowrank_layout(d->d_in, d->d_out, d->r, d->dropout, n, 0, work, cache);
    return LORT_OK;
}
LORT_DEF lort_status lort_lora_cache_size(const lort_lora_desc *desc, int n, size_t *bytes) {
    lort__layout w, c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__lora_plan(desc, n, NULL, &w, &c))) return st;
    return lort__lay_bytes(&c, bytes);
}
LORT_DEF lort_status lort_lora_workspace_size(const lort_lora_desc *desc, int n, size_t *bytes) {
    lort__layout w, c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__lora_plan(desc, n, NULL, &w, &c))) return st;
    return lort__lay_bytes(&w, bytes);
}

LORT_DEF lort_status lort_lora_init(const lort_lora_desc *desc, float *A, float *B,
                                    lort_rng *rng) {
    lort_status st;
    size_t i, na, nb;
    if ((st = lort__lora_check(desc, NULL))) return st;
    if (!A || !B || !rng) return LORT_ERR_NULL;
    na = (size_t)desc->r * (size_t)desc->d_in;
    nb = (size_t)desc->d_out * (size_t)desc->r;
    if (desc->init == LORT_LORA_INIT_GAUSSIAN) {
        float sd = 1.0f / (float)desc->r;
        for (i = 0; i < na; ++i) A[i] = sd * lort_rng_normal(rng);
    } else { /* kaiming_uniform(a = sqrt 5) on (r, d_in): bound = 1/sqrt(fan_in) */
        float bound = 1.0f / sqrtf((float)desc->d_in);
        for (i = 0; i < na; ++i) A[i] = bound * (2.0f * lort_rng_uniform(rng) - 1.0f);
    }
    memset(B, 0, nb * sizeof(float));
    return LORT_OK;
}

LORT_DEF lort_status lort_lora_forward(const lort_lora_desc *desc, float *y, const float *x,
                                       const float *A, const float *B, int n, void *cache,
                                       size_t cache_size, void *work, size_t work_size) {
    lort__lowrank P;
    lort__layout w, c;
    lort_status st;
    float s, *base, *H;
    if ((st = lort__lora_plan(desc, n, &s, &w, &c))) return st;
    if (!y || !x || !A || !B) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(A, (size_t)desc->r * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(B, (size_t)desc->d_out * (size_t)desc->r);
    base = lort__lay_base(work);
    H = cache ? lort__lay_base(cache) : lort__lay_slot(base, &w, LORT__LR_H);
    lort__lowrank_init(&P, desc->d_in, desc->d_out, desc->r, s, desc->dropout,
                       desc->dropout_seed, base, &w);
    P.A = A;
    P.B = B;
    lort__lowrank_forward(&P, y, x, n, H);
    return LORT_OK;
}

LORT_DEF lort_status lort_lora_backward(const lort_lora_desc *desc, float *dx, float *dA,
                                        float *dB, const float *dy, const float *x,
                                        const float *A, const float *B, int n,
                                        const void *cache, size_t cache_size, void *work,
                                        size_t work_size) {
    lort__lowrank P;
    lort__layout w, c;
    lort_status st;
    float s, *base;
    if ((st = lort__lora_plan(desc, n, &s, &w, &c))) return st;
    if (!dy || !x || !A || !B) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)desc->d_out);
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(A, (size_t)desc->r * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(B, (size_t)desc->d_out * (size_t)desc->r);
    base = lort__lay_base(work);
    lort__lowrank_init(&P, desc->d_in, desc->d_out, desc->r, s, desc->dropout,
                       desc->dropout_seed, base, &w);
    P.A = A;
    P.B = B;
    lort__lowrank_backward(&P, dx, dA, dB, NULL, dy, x, n,
                           cache ? lort__lay_base((void *)(uintptr_t)cache) : NULL);
    return LORT_OK;
}

LORT_DEF lort_status lort_lora_merge(const lort_lora_desc *desc, float *W, const float *A,
                                     const float *B, float weight, void *work,
                                     size_t work_size) {
    lort_status st;
    float s;
    if ((st = lort__lora_check(desc, &s))) return st;
    if (!W || !A || !B) return LORT_ERR_NULL;
    if (!lort__finite(weight)) return LORT_ERR_INVALID_ARG;
    (void)work; (void)work_size; /* lora needs no scratch: W += (weight s B) A is one GEMM */
    lort__gemm(0, 0, desc->d_out, desc->d_in, desc->r, weight * s, B, desc->r, A, desc->d_in, 1.0f,
               W, desc->d_in);                                                  /* W += w s B A */
    return LORT_OK;
}

LORT_DEF lort_status lort_lora_delta(const lort_lora_desc *desc, float *dW, const float *A,
                                     const float *B, void *work, size_t work_size) {
    lort_status st;
    float s;
    if ((st = lort__lora_check(desc, &s))) return st;
    if (!dW || !A || !B) return LORT_ERR_NULL;
    (void)work; (void)work_size; /* one GEMM, no scratch */
    lort__gemm(0, 0, desc->d_out, desc->d_in, desc->r, s, B, desc->r, A, desc->d_in, 0.0f, dW,
               desc->d_in);                                                     /* dW = s B A */
    return LORT_OK;
}

#endif /* LORT__HAS_LORA */
#endif /* LORT__HAS_LOWRANK */

// >>loraxs =============================================================================== impl
#if LORT__HAS_LORAXS

LORT__PRIVATE lort_status lort__loraxs_check(const lort_loraxs_desc *d, float *scale) {
    lort_status st;
    if (!d) return LORT_ERR_NULL;
    if ((st = lort__lowrank_check(d->d_in, d->d_out, d->r, d->alpha, d->dropout, scale,
                                  d->rslora)))
        return st;
    if (d->r > d->d_in || d->r > d->d_out) return LORT_ERR_SHAPE;
    if (!lort__finite(d->init_std) || d->init_std < 0.0f || d->svd.oversample < 0 ||
        d->svd.max_sweeps < 0 || d->svd.max_sweeps > LORT_SVD_MAX_SWEEPS ||
        d->svd.power_iters > LORT_SVD_MAX_POWER_ITERS)
        return LORT_ERR_INVALID_ARG;
    return LORT_OK;
}
LORT__PRIVATE lort_status lort__loraxs_plan(const lort_loraxs_desc *d, int n, float *scale,
                                            lort__layout *work, lort__layout *cache) {
    lort_status st;
    if ((st = lort__loraxs_check(d, scale))) return st;
    if ((st = lort__rows_check(n, d->d_in, d->d_out))) return st;
    lort__lay_init(work);
    lort__lay_init(cache);
    lort__lowrank_layout(d->d_in, d->d_out, d->r, d->dropout, n, 1, work, cache);
    return LORT_OK;
}

LORT_DEF lort_status lort_loraxs_desc_resolve(const lort_loraxs_desc *desc,
                                              lort_loraxs_desc *out) {
    lort_status st;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__loraxs_check(desc, NULL))) return st;
    *out = *desc;
    if (lort__is_zero(out->alpha)) out->alpha = (float)out->r;
    if (lort__is_zero(out->init_std)) out->init_std = 1e-5f;
    return lort__svd_opts_resolve(out->d_out, out->d_in, out->r, &out->svd);
}
LORT_DEF lort_status lort_loraxs_scale(const lort_loraxs_desc *desc, float *scale) {
    if (!scale) return LORT_ERR_NULL;
    return lort__loraxs_check(desc, scale);
}
LORT_DEF lort_status lort_loraxs_param_count(const lort_loraxs_desc *desc, size_t *count) {
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__loraxs_check(desc, NULL))) return st;
    *count = (size_t)desc->r * (size_t)desc->r;
    return LORT_OK;
}
LORT_DEF lort_status lort_loraxs_frozen_count(const lort_loraxs_desc *desc, size_t *count) {
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__loraxs_check(desc, NULL))) return st;
    *count = (size_t)desc->r * ((size_t)desc->d_in + (size_t)desc->d_out);
    return LORT_OK;
}
LORT_DEF lort_status lort_loraxs_cache_size(const lort_loraxs_desc *desc, int n, size_t *bytes) {
    lort__layout w, c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__loraxs_plan(desc, n, NULL, &w, &c))) return st;
    return lort__lay_bytes(&c, bytes);
}
LORT_DEF lort_status lort_loraxs_workspace_size(const lort_loraxs_desc *desc, int n,
                                                size_t *bytes) {
    lort__layout w, c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__loraxs_plan(desc, n, NULL, &w, &c))) return st;
    return lort__lay_bytes(&w, bytes);
}

/* init workspace: the truncated SVD of W0 (d_out, d_in) and the r singular values. */
LORT__PRIVATE lort_status lort__loraxs_init_layout(const lort_loraxs_desc *d, lort__layout *L,
                                                   size_t *svd_bytes) {
    lort_status st;
    if ((st = lort__loraxs_check(d, NULL))) return st;
    if ((st = lort_svd_truncated_workspace_size(d->d_out, d->d_in, d->r, &d->svd, svd_bytes)))
        return st;
    lort__lay_init(L);
    lort__lay_add(L, (size_t)d->r);                                   /* S */
    lort__lay_add(L, *svd_bytes / sizeof(float) + 1);                 /* SVD workspace */
    return LORT_OK;
}
LORT_DEF lort_status lort_loraxs_init_workspace_size(const lort_loraxs_desc *desc,
                                                     size_t *bytes) {
    lort__layout L;
    size_t sb;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__loraxs_init_layout(desc, &L, &sb))) return st;
    return lort__lay_bytes(&L, bytes);
}

LORT_DEF lort_status lort_loraxs_init(const lort_loraxs_desc *desc, float *R, float *A, float *B,
                                      const float *W0, lort_rng *rng, void *work,
                                      size_t work_size) {
    lort__layout L;
    size_t sb, i;
    lort_status st;
    float *base, *S, sd;
    int r, k;
    if ((st = lort__loraxs_init_layout(desc, &L, &sb))) return st;
    if (!R || !A || !B || !W0 || !rng) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    base = lort__lay_base(work);
    S = lort__lay_slot(base, &L, 0);
    r = desc->r;
    /* B = U_r (d_out, r), A = S_r V_r^T (r, d_in) */
    st = lort_svd_truncated(B, S, A, W0, desc->d_in, desc->d_out, desc->d_in, r, &desc->svd,
                            lort__lay_slot(base, &L, 1), sb);
    if (st) return st;
    for (k = 0; k < r; ++k)
        for (i = 0; i < (size_t)desc->d_in; ++i) A[(size_t)k * (size_t)desc->d_in + i] *= S[k];
    sd = lort__is_zero(desc->init_std) ? 1e-5f : desc->init_std;
    for (i = 0; i < (size_t)r * (size_t)r; ++i) R[i] = sd * lort_rng_normal(rng);
    return LORT_OK;
}

LORT_DEF lort_status lort_loraxs_forward(const lort_loraxs_desc *desc, float *y, const float *x,
                                         const float *R, const float *A, const float *B, int n,
                                         void *cache, size_t cache_size, void *work,
                                         size_t work_size) {
    lort__lowrank P;
    lort__layout w, c;
    lort_status st;
    float s, *base, *H;
    if ((st = lort__loraxs_plan(desc, n, &s, &w, &c))) return st;
    if (!y || !x || !R || !A || !B) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(R, (size_t)desc->r * (size_t)desc->r);
    base = lort__lay_base(work);
    H = cache ? lort__lay_base(cache) : lort__lay_slot(base, &w, LORT__LR_H);
    lort__lowrank_init(&P, desc->d_in, desc->d_out, desc->r, s, desc->dropout,
                       desc->dropout_seed, base, &w);
    P.R = R;
    P.A = A;
    P.B = B;
    lort__lowrank_forward(&P, y, x, n, H);
    return LORT_OK;
}

LORT_DEF lort_status lort_loraxs_backward(const lort_loraxs_desc *desc, float *dx, float *dR,
                                          const float *dy, const float *x, const float *R,
                                          const float *A, const float *B, int n,
                                          const void *cache, size_t cache_size, void *work,
                                          size_t work_size) {
    lort__lowrank P;
    lort__layout w, c;
    lort_status st;
    float s, *base;
    if ((st = lort__loraxs_plan(desc, n, &s, &w, &c))) return st;
    if (!dy || !x || !R || !A || !B) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)desc->d_out);
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(R, (size_t)desc->r * (size_t)desc->r);
    LORT__DEBUG_FINITE(A, (size_t)desc->r * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(B, (size_t)desc->d_out * (size_t)desc->r);
    base = lort__lay_base(work);
    lort__lowrank_init(&P, desc->d_in, desc->d_out, desc->r, s, desc->dropout,
                       desc->dropout_seed, base, &w);
    P.R = R;
    P.A = A;
    P.B = B;
    lort__lowrank_backward(&P, dx, NULL, NULL, dR, dy, x, n,
                           cache ? lort__lay_base((void *)(uintptr_t)cache) : NULL);
    return LORT_OK;
}

/* W = beta W + coef B R A, through T = R A (r, d_in) in the workspace. */
LORT__PRIVATE lort_status lort__loraxs_dense(const lort_loraxs_desc *d, float *W, const float *R,
                                             const float *A, const float *B, float weight,
                                             float beta, void *work, size_t work_size) {
    lort__layout w, c;
    lort_status st;
    float s, *T;
    if ((st = lort__loraxs_plan(d, 1, &s, &w, &c))) return st;
    if (!W || !R || !A || !B) return LORT_ERR_NULL;
    if (!lort__finite(weight)) return LORT_ERR_INVALID_ARG;
    if ((st = lort__lay_check(&w, work, work_size, LORT_ERR_WORKSPACE))) return st;
    T = lort__lay_slot(lort__lay_base(work), &w, LORT__LR_M);
    lort__gemm(0, 0, d->r, d->d_in, d->r, 1.0f, R, d->r, A, d->d_in, 0.0f, T, d->d_in); /* R A */
    lort__gemm(0, 0, d->d_out, d->d_in, d->r, weight * s, B, d->r, T, d->d_in, beta, W, d->d_in);
    return LORT_OK;
}
LORT_DEF lort_status lort_loraxs_merge(const lort_loraxs_desc *desc, float *W, const float *R,
                                       const float *A, const float *B, float weight,
                                       void *work, size_t work_size) {
    return lort__loraxs_dense(desc, W, R, A, B, weight, 1.0f, work, work_size);
}
LORT_DEF lort_status lort_loraxs_delta(const lort_loraxs_desc *desc, float *dW, const float *R,
                                       const float *A, const float *B, void *work,
                                       size_t work_size) {
    return lort__loraxs_dense(desc, dW, R, A, B, 1.0f, 0.0f, work, work_size);
}

#endif /* LORT__HAS_LORAXS */

// >>train ================================================================================ impl
#if LORT__HAS_TRAIN

/* The train engine shared by tt (TT-SVD and rounding of a tt matrix) and mpo (DoTA's cores):
   one shape (lort__train), the left-to-right truncated TT-SVD and TT rounding. */

/* A train of N cores over modes m_k: the shape shared by the mpo family (m_k = i_k j_k, the
   data permuted to the interleaved order) and by TT-SVD / rounding of the tt form (m_k = n_k).
   0-based: core k is (rank[k], mode[k], rank[k+1]); rest[k] = prod_{m >= k} mode[m]. */
typedef struct lort__train {
    int d, mpo, rows, cols;
    int rm[LORT_MPO_MAX_CORES], cm[LORT_MPO_MAX_CORES], mode[LORT_MPO_MAX_CORES];
    int rank[LORT_MPO_MAX_CORES + 1];
    size_t size;                           /* prod mode = rows * cols */
    size_t off[LORT_MPO_MAX_CORES + 1];    /* float offset of core k; off[d] = all cores */
    size_t rest[LORT_MPO_MAX_CORES + 1];
} lort__train;

LORT__PRIVATE int lort__imin(int a, int b) { return a < b ? a : b; }
/* min(a * b, cap) without overflow (a, b >= 0) */
LORT__PRIVATE int lort__satmul(int a, int b, int cap) {
    return b != 0 && a > cap / b ? cap : lort__imin(a * b, cap);
}

/* Offsets and the checks every kernel relies on: each GEMM dimension and leading dimension
   derived from the train fits int, each buffer size fits size_t. */
LORT__PRIVATE lort_status lort__train_finish(lort__train *T) {
    int k, N = T->d;
    size_t t, a, b;
    T->rest[N] = 1;
    for (k = N - 1; k >= 0; --k)
        if (!lort__mul(T->rest[k + 1], (size_t)T->mode[k], &T->rest[k])) return LORT_ERR_OVERFLOW;
    T->size = T->rest[0];
    if (!lort__mul(T->size, sizeof(float), &t)) return LORT_ERR_OVERFLOW;
    for (k = 1; k <= N; ++k)
        if (T->rest[k] > (size_t)INT_MAX) return LORT_ERR_OVERFLOW;
    T->off[0] = 0;
    for (k = 0; k < N; ++k) {
        if (!lort__mul((size_t)T->rank[k], (size_t)T->mode[k], &a) || a > (size_t)INT_MAX ||
            !lort__mul(a, (size_t)T->rank[k + 1], &b) || b > (size_t)INT_MAX ||
            !lort__mul((size_t)T->mode[k], (size_t)T->rank[k + 1], &a) || a > (size_t)INT_MAX ||
            !lort__mul((size_t)T->rank[k], T->rest[k], &a) || !lort__mul(a, sizeof(float), &a) ||
            b > LORT__SIZE_LIMIT / sizeof(float) - T->off[k])
            return LORT_ERR_OVERFLOW;
        T->off[k + 1] = T->off[k] + b;
    }
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__mpo_train(const lort_mpo_desc *d, lort__train *T) {
    int k, N;
    size_t pr = 1, pc = 1, t;
    if (!d) return LORT_ERR_NULL;
    N = d->n_cores;
    if (N < 1 || N > LORT_MPO_MAX_CORES || d->d_in < 0 || d->d_out < 0 || d->bond < 0 ||
        d->path < LORT_MPO_AUTO || d->path > LORT_MPO_DENSE ||
        d->residual < LORT_MPO_RESIDUAL_NONE || d->residual > LORT_MPO_RESIDUAL_NF4 ||
        d->svd.oversample < 0 || d->svd.max_sweeps < 0 || d->svd.max_sweeps > LORT_SVD_MAX_SWEEPS ||
        d->svd.power_iters > LORT_SVD_MAX_POWER_ITERS)
        return LORT_ERR_INVALID_ARG;
    memset(T, 0, sizeof(*T));
    T->d = N;
    T->mpo = 1;
    for (k = 0; k < N; ++k) {
        int i = d->row_factors[k], j = d->col_factors[k];
        if (i <= 0 || j <= 0) return LORT_ERR_INVALID_ARG;
        if (!lort__mul(pr, (size_t)i, &pr) || !lort__mul(pc, (size_t)j, &pc) ||
            pr > (size_t)INT_MAX || pc > (size_t)INT_MAX)
            return LORT_ERR_OVERFLOW;
        if (!lort__mul((size_t)i, (size_t)j, &t) || t > (size_t)INT_MAX) return LORT_ERR_OVERFLOW;
        T->rm[k] = i;
        T->cm[k] = j;
        T->mode[k] = (int)t;
    }
    if ((d->d_out && (size_t)d->d_out != pr) || (d->d_in && (size_t)d->d_in != pc))
        return LORT_ERR_SHAPE;
    T->rows = (int)pr;
    T->cols = (int)pc;
    if (d->bonds[0] < 0 || d->bonds[0] > 1 || d->bonds[N] < 0 || d->bonds[N] > 1)
        return LORT_ERR_INVALID_ARG;
    T->rank[0] = T->rank[N] = 1;
    for (k = 1; k < N; ++k) {
        int b = d->bonds[k] ? d->bonds[k] : d->bond;
        if (b <= 0) return LORT_ERR_INVALID_ARG;
        T->rank[k] = b;
    }
    for (k = 1; k < N; ++k)
        T->rank[k] = lort__satmul(T->rank[k - 1], T->mode[k - 1], T->rank[k]);
    for (k = N - 1; k >= 1; --k)
        T->rank[k] = lort__satmul(T->rank[k + 1], T->mode[k], T->rank[k]);
    return lort__train_finish(T);
}

LORT__PRIVATE lort_status lort__tt_train(const lort_tt_desc *d, lort__train *T) {
    int k, N;
    size_t p = 1, rc;
    if (!d) return LORT_ERR_NULL;
    N = d->n_cores;
    if (d->rows <= 0 || d->cols <= 0 || N < 1 || N > LORT_TT_MAX_CORES ||
        N > LORT_MPO_MAX_CORES || d->rank < 0)
        return LORT_ERR_INVALID_ARG;
    if (!lort__mul((size_t)d->rows, (size_t)d->cols, &rc)) return LORT_ERR_OVERFLOW;
    memset(T, 0, sizeof(*T));
    T->d = N;
    T->rows = d->rows;
    T->cols = d->cols;
    for (k = 0; k < N; ++k) {
        if (d->modes[k] <= 0) return LORT_ERR_INVALID_ARG;
        if (!lort__mul(p, (size_t)d->modes[k], &p)) return LORT_ERR_OVERFLOW;
        T->rm[k] = T->mode[k] = d->modes[k];
        T->cm[k] = 1;
    }
    if (p != rc) return LORT_ERR_SHAPE;
    if (d->ranks[0] < 0 || d->ranks[0] > 1 || d->ranks[N] < 0 || d->ranks[N] > 1)
        return LORT_ERR_INVALID_ARG;
    T->rank[0] = T->rank[N] = 1;
    for (k = 1; k < N; ++k) {
        int r = d->ranks[k] ? d->ranks[k] : d->rank;
        if (r <= 0) return LORT_ERR_INVALID_ARG;
        T->rank[k] = r;
    }
    return lort__train_finish(T);
}

/* Between the (rows, cols) matrix and the interleaved (i_1, j_1, ..., i_N, j_N) tensor:
   to_matrix = 0: dst[interleaved] = alpha src[matrix]; to_matrix = 1: dst[matrix] (+)= alpha
   src[interleaved] (add: accumulate). An odometer over the digits (a_1, b_1, ..., a_{N-1},
   b_{N-1}) moves one contiguous interleaved block of i_N j_N entries at a time: i_N runs of
   j_N entries, rows `cols` apart in the matrix. */
LORT__PRIVATE void lort__mpo_perm(const lort__train *T, float *dst, const float *src,
                                  int to_matrix, float alpha, int add) {
    int N = T->d, nd = 2 * N - 2, k, a, dig[2 * LORT_MPO_MAX_CORES], lim[2 * LORT_MPO_MAX_CORES];
    size_t str[2 * LORT_MPO_MAX_CORES], rs = (size_t)T->cols * (size_t)T->rm[N - 1];
    size_t cs = (size_t)T->cm[N - 1], run = (size_t)T->cm[N - 1], rowlen = (size_t)T->cols;
    size_t blk = (size_t)T->mode[N - 1], t, off = 0, i;
    for (k = N - 2; k >= 0; --k) { /* digit 2k = a_k (row stride), 2k+1 = b_k (column stride) */
        dig[2 * k] = dig[2 * k + 1] = 0;
        lim[2 * k] = T->rm[k];
        lim[2 * k + 1] = T->cm[k];
        str[2 * k] = rs;
        str[2 * k + 1] = cs;
        rs *= (size_t)T->rm[k];
        cs *= (size_t)T->cm[k];
    }
    for (t = 0; t < T->size; t += blk) {
        for (a = 0; a < T->rm[N - 1]; ++a) {
            size_t mo = off + (size_t)a * rowlen, io = t + (size_t)a * run;
            float *o = to_matrix ? dst + mo : dst + io;
            const float *s = to_matrix ? src + io : src + mo;
            if (add)
                for (i = 0; i < run; ++i) o[i] += alpha * s[i];
            else
                for (i = 0; i < run; ++i) o[i] = alpha * s[i];
        }
        for (k = nd - 1; k >= 0; --k) { /* odometer */
            off += str[k];
            if (++dig[k] < lim[k]) break;
            off -= str[k] * (size_t)lim[k];
            dig[k] = 0;
        }
    }
}

LORT__PRIVATE double lort__sumsq(const float *x, size_t count) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < count; ++i) s += (double)x[i] * (double)x[i];
    return s;
}

/* ---- TT-SVD ---------------------------------------------------------------------------------- */

/* Ranks TT-SVD reaches: r_k = min(rank_k, r_{k-1} mode_{k-1}, rest_k); the rest is zero padding. */
LORT__PRIVATE void lort__ttsvd_ranks(const lort__train *T, int *r) {
    int k;
    r[0] = 1;
    for (k = 1; k < T->d; ++k)
        r[k] = lort__imin(lort__satmul(r[k - 1], T->mode[k - 1], T->rank[k]),
                          T->rest[k] < (size_t)INT_MAX ? (int)T->rest[k] : INT_MAX);
    r[T->d] = 1;
}

/* OUT (the cores, first so that mpo init can keep them while reusing the rest) is copied to the
   caller's cores only when everything succeeded: an error writes nothing. */
enum { LORT__TS_OUT, LORT__TS_A, LORT__TS_B, LORT__TS_U, LORT__TS_S, LORT__TS_VT, LORT__TS_SVD };
LORT__PRIVATE lort_status lort__ttsvd_layout(const lort__train *T, const lort_svd_opts *o,
                                             lort__layout *L, size_t *svd_bytes) {
    int r[LORT_MPO_MAX_CORES + 1], k;
    size_t um = 0, vm = 0, sm = 1, sb = 0, t;
    lort_status st;
    lort__ttsvd_ranks(T, r);
    for (k = 0; k + 1 < T->d; ++k) {
        int m = r[k] * T->mode[k], c = (int)T->rest[k + 1], rr = r[k + 1];
        if ((size_t)m * (size_t)rr > um) um = (size_t)m * (size_t)rr;
        if ((size_t)rr * (size_t)c > vm) vm = (size_t)rr * (size_t)c;
        if ((size_t)rr > sm) sm = (size_t)rr;
        if ((st = lort_svd_truncated_workspace_size(m, c, rr, o, &t))) return st;
        if (t > sb) sb = t;
    }
    lort__lay_init(L);
    lort__lay_put(L, LORT__TS_OUT, T->off[T->d]);           /* the cores being built */
    lort__lay_put(L, LORT__TS_A, T->size);                  /* A: the remainder being factored */
    lort__lay_put(L, LORT__TS_B, T->size);                  /* B: the next remainder */
    lort__lay_put(L, LORT__TS_U, um);                       /* U */
    lort__lay_put(L, LORT__TS_S, sm);                       /* S */
    lort__lay_put(L, LORT__TS_VT, vm);                       /* Vt */
    lort__lay_put(L, LORT__TS_SVD, sb / sizeof(float) + 1);   /* SVD workspace */
    *svd_bytes = sb;
    return LORT_OK;
}

/* The TT-SVD of W (matrix; interleaved first for an mpo) into the OUT slot; *err2 = ||W -
   train||^2, from the residual of each projection (no cancellation). The remainder after core
   k is U^T C, the orthogonal projection, whatever the accuracy of the SVD's singular values. */
LORT__PRIVATE lort_status lort__ttsvd(const lort__train *T, const float *W,
                                      const lort_svd_opts *o, double *err2, float *base,
                                      const lort__layout *L, size_t svd_bytes) {
    float *cores = lort__lay_slot(base, L, LORT__TS_OUT);
    float *A = lort__lay_slot(base, L, LORT__TS_A), *B = lort__lay_slot(base, L, LORT__TS_B);
    float *U = lort__lay_slot(base, L, LORT__TS_U), *S = lort__lay_slot(base, L, LORT__TS_S);
    float *Vt = lort__lay_slot(base, L, LORT__TS_VT), *sw = lort__lay_slot(base, L, LORT__TS_SVD);
    int r[LORT_MPO_MAX_CORES + 1], k, p, N = T->d;
    double e2 = 0.0;
    lort_status st;
    if (!lort__all_finite(W, T->size)) return LORT_ERR_NONFINITE; /* before writing cores */
    lort__ttsvd_ranks(T, r);
    if (T->mpo) lort__mpo_perm(T, A, W, 0, 1.0f, 0);
    else memcpy(A, W, T->size * sizeof(float));
    memset(cores, 0, T->off[N] * sizeof(float));
    for (k = 0; k + 1 < N; ++k) {
        int m = r[k] * T->mode[k], c = (int)T->rest[k + 1], rr = r[k + 1];
        float *t;
        if ((st = lort_svd_truncated(U, S, Vt, A, c, m, c, rr, o, sw, svd_bytes))) return st;
        lort__gemm(1, 0, rr, c, m, 1.0f, U, rr, A, c, 0.0f, B, c);        /* B = U^T A */
        if (err2) {
            lort__gemm(0, 0, m, c, rr, -1.0f, U, rr, B, c, 1.0f, A, c);   /* A -= U B */
            e2 += lort__sumsq(A, (size_t)m * (size_t)c);
        }
        for (p = 0; p < m; ++p) /* core k rows (p < r_k, mode) <- U, columns padded */
            memcpy(cores + T->off[k] + (size_t)p * (size_t)T->rank[k + 1], U + (size_t)p * (size_t)rr,
                   (size_t)rr * sizeof(float));
        t = A;
        A = B;
        B = t;
    }
    memcpy(cores + T->off[N - 1], A, (size_t)r[N - 1] * (size_t)T->mode[N - 1] * sizeof(float));
    if (!lort__all_finite(cores, T->off[N])) return LORT_ERR_NONFINITE;
    if (err2) *err2 = e2;
    return LORT_OK;
}

/* ---- TT rounding ------------------------------------------------------------------------------ */

/* Same cores and modes (and, for mpo, the same factors) in both trains. */
LORT__PRIVATE lort_status lort__round_pair(const lort__train *F, const lort__train *G) {
    int k;
    if (F->d != G->d || F->mpo != G->mpo) return LORT_ERR_SHAPE;
    for (k = 0; k < F->d; ++k)
        if (F->rm[k] != G->rm[k] || F->cm[k] != G->cm[k]) return LORT_ERR_SHAPE;
    return LORT_OK;
}
/* OUT (the rounded train) is copied to the caller's cores only on success. */
enum { LORT__RD_C, LORT__RD_U, LORT__RD_S, LORT__RD_VT, LORT__RD_TMP, LORT__RD_SVD, LORT__RD_OUT };
LORT__PRIVATE lort_status lort__round_layout(const lort__train *F, const lort__train *G,
                                             lort__layout *L, size_t *svd_bytes) {
    int k;
    size_t mc = 1, mr = 1, sb = 0, t;
    lort_status st;
    for (k = 0; k < F->d; ++k) {
        size_t core = F->off[k + 1] - F->off[k];
        if (core > mc) mc = core;
        if ((size_t)F->rank[k] > mr) mr = (size_t)F->rank[k];
        if ((st = lort_svd_jacobi_workspace_size(F->rank[k], F->mode[k] * F->rank[k + 1], &t)))
            return st;
        if (t > sb) sb = t;
        if ((st = lort_svd_jacobi_workspace_size(F->rank[k] * F->mode[k], F->rank[k + 1], &t)))
            return st;
        if (t > sb) sb = t;
    }
    lort__lay_init(L);
    lort__lay_put(L, LORT__RD_C, F->off[F->d]);              /* C: the working train */
    lort__lay_put(L, LORT__RD_U, mc);                        /* U */
    lort__lay_put(L, LORT__RD_S, mr);                        /* S (min dimension <= a rank) */
    lort__lay_put(L, LORT__RD_VT, mc);                        /* Vt */
    lort__lay_put(L, LORT__RD_TMP, mc);                        /* TMP */
    lort__lay_put(L, LORT__RD_SVD, sb / sizeof(float) + 1);    /* Jacobi workspace */
    lort__lay_put(L, LORT__RD_OUT, G->off[G->d]);              /* the rounded train */
    *svd_bytes = sb;
    return LORT_OK;
}

/* Oseledets' TT rounding: right-to-left orthogonalisation by exact SVDs (core k = (U S) Vt, Vt
   kept, U S pushed into core k-1), then left to right: SVD of core k as (w_{k-1} mode, w_k),
   keep the top rank'_k, push S Vt into core k+1. The discarded singular values of the second
   sweep give the error exactly (the parts are orthonormal): bound = sqrt(sum of squares). */
LORT__PRIVATE lort_status lort__round(const lort__train *F, const float *in, const lort__train *G,
                                      float *cores_out, float *err_bound, float *base,
                                      const lort__layout *L, size_t svd_bytes) {
    float *out = lort__lay_slot(base, L, LORT__RD_OUT);
    float *C = lort__lay_slot(base, L, LORT__RD_C), *U = lort__lay_slot(base, L, LORT__RD_U);
    float *S = lort__lay_slot(base, L, LORT__RD_S), *Vt = lort__lay_slot(base, L, LORT__RD_VT);
    float *Tm = lort__lay_slot(base, L, LORT__RD_TMP), *sw = lort__lay_slot(base, L, LORT__RD_SVD);
    int w[LORT_MPO_MAX_CORES + 1], k, i, j, N = F->d;
    double e2 = 0.0;
    lort_status st;
    if (!lort__all_finite(in, F->off[N])) return LORT_ERR_NONFINITE;
    memcpy(C, in, F->off[N] * sizeof(float));
    for (k = 0; k <= N; ++k) w[k] = F->rank[k];
    for (k = N - 1; k >= 1; --k) {
        int m = w[k], c = F->mode[k] * w[k + 1], q = lort__imin(m, c), mp = w[k - 1] * F->mode[k - 1];
        float *ck = C + F->off[k], *cp = C + F->off[k - 1];
        if ((st = lort_svd_jacobi(U, S, Vt, ck, c, m, c, 0, sw, svd_bytes))) return st;
        memcpy(ck, Vt, (size_t)q * (size_t)c * sizeof(float));
        for (i = 0; i < m; ++i)
            for (j = 0; j < q; ++j) U[(size_t)i * (size_t)q + (size_t)j] *= S[j];
        lort__gemm(0, 0, mp, q, m, 1.0f, cp, m, U, q, 0.0f, Tm, q);
        memcpy(cp, Tm, (size_t)mp * (size_t)q * sizeof(float));
        w[k] = q;
    }
    memset(out, 0, G->off[N] * sizeof(float));
    for (k = 0; k + 1 < N; ++k) {
        int m = w[k] * F->mode[k], c = w[k + 1], q = lort__imin(m, c);
        int rr = lort__imin(G->rank[k + 1], q), nc = F->mode[k + 1] * w[k + 2];
        float *ck = C + F->off[k], *cn = C + F->off[k + 1];
        if ((st = lort_svd_jacobi(U, S, Vt, ck, c, m, c, 0, sw, svd_bytes))) return st;
        for (j = rr; j < q; ++j) e2 += (double)S[j] * (double)S[j];
        for (i = 0; i < m; ++i) /* rows (p < w_k, mode) of core k <- U[:, :rr] */
            memcpy(out + G->off[k] + (size_t)i * (size_t)G->rank[k + 1], U + (size_t)i * (size_t)q,
                   (size_t)rr * sizeof(float));
        for (j = 0; j < rr; ++j)
            for (i = 0; i < c; ++i) Vt[(size_t)j * (size_t)c + (size_t)i] *= S[j];
        lort__gemm(0, 0, rr, nc, c, 1.0f, Vt, c, cn, nc, 0.0f, Tm, nc);
        memcpy(cn, Tm, (size_t)rr * (size_t)nc * sizeof(float));
        w[k + 1] = rr;
    }
    memcpy(out + G->off[N - 1], C + F->off[N - 1],
           (size_t)w[N - 1] * (size_t)F->mode[N - 1] * sizeof(float));
    if (!lort__all_finite(out, G->off[N]) || !(e2 <= (double)FLT_MAX * (double)FLT_MAX))
        return LORT_ERR_NONFINITE; /* nothing written yet */
    memcpy(cores_out, out, G->off[N] * sizeof(float));
    if (err_bound) *err_bound = (float)sqrt(e2);
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__round_call(const lort__train *F, const float *in,
                                           const lort__train *G, float *out, float *err_bound,
                                           void *work, size_t work_size, size_t *bytes) {
    lort__layout L;
    size_t sb, need;
    lort_status st;
    if ((st = lort__round_pair(F, G))) return st;
    if ((st = lort__round_layout(F, G, &L, &sb)) || (st = lort__lay_bytes(&L, &need))) return st;
    if (bytes) {
        *bytes = need;
        return LORT_OK;
    }
    if (!in || !out) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    return lort__round(F, in, G, out, err_bound, lort__lay_base(work), &L, sb);
}

#endif /* LORT__HAS_TRAIN */

// >>tt =================================================================================== impl
#if LORT__HAS_TT

/* A validated tt shape, zero-based: core k is (t[k], n[k], t[k+1]), k = 0..d-1; lo[k] =
   prod_{m<k} n[m], hi[k] = prod_{m>k} n[m]; prefix P_k = G_0..G_k is (lo[k+1], t[k+1]) and
   P_{d-1} = W_tt; suffix S_k = G_k..G_{d-1} is (t[k], n[k] hi[k]). P_0 and S_{d-1} are the
   cores themselves; the others live at poff[k] / soff[k] (floats) of their slots. */
typedef struct lort__tt_plan {
    int d, rows, cols;
    int n[LORT_TT_MAX_CORES];
    int t[LORT_TT_MAX_CORES + 1];
    size_t lo[LORT_TT_MAX_CORES + 1], hi[LORT_TT_MAX_CORES];
    size_t coff[LORT_TT_MAX_CORES + 1]; /* core offsets; coff[d] = param count */
    size_t poff[LORT_TT_MAX_CORES], soff[LORT_TT_MAX_CORES];
    size_t N, psz, ssz, tmp;            /* rows*cols; floats of P, S and the temp */
    size_t esz;                         /* floats of each of the two environment buffers */
    int split;                          /* cores >= split take their gradient from the sweep */
    int mid;                            /* W_tt = P_mid S_{mid+1}: see lort__tt_prefix */
    float gcost;                        /* MACs of lort__tt_grad (the model of plan_split) */
    /* the factored path (lort__tt_xfwd): split core fs (-1: the rows do not split inside one
       mode), p = fp rows and q = fq columns of it; per row: fx MACs, xoff[k] the offset of
       core k's input X_k in the states (xsz floats), gmax the largest X_k; calls of fewer
       than nf rows take it */
    int fs, fp, fq, nf;
    float fx;
    size_t xoff[LORT_TT_MAX_CORES], xsz, gmax;
    int overflow;                       /* a slot size overflows size_t */
} lort__tt_plan;

/* MACs of materialising W_tt as P_m S_{m+1}: the prefix chain up to m (left to right), the
   suffix chain down to m + 1 (right to left) and one GEMM (lo[m+1], t[m+1]) x (t[m+1], rest).
   m = d - 2 is the plain prefix chain, m = 0 the plain suffix chain; which is cheaper depends
   on where the large modes are (the chain that starts from the small modes stays small). */
LORT__PRIVATE float lort__tt_mat_cost(const lort__tt_plan *p, int m) {
    float c = (float)p->N * (float)p->t[m + 1];
    int k;
    for (k = 1; k <= m; ++k)
        c += (float)p->lo[k] * (float)p->t[k] * (float)p->n[k] * (float)p->t[k + 1];
    for (k = m + 1; k <= p->d - 2; ++k)
        c += (float)p->t[k] * (float)p->n[k] * (float)p->t[k + 1] * (float)p->hi[k];
    return c;
}
/* The cheapest m >= lo_m (0 when d < 2), and its cost in *cost. */
LORT__PRIVATE int lort__tt_mat_best(const lort__tt_plan *p, int lo_m, float *cost) {
    int m, best = lo_m > 0 ? lo_m : 0;
    float c, bc;
    if (p->d < 2) {
        *cost = 0.0f;
        return 0;
    }
    if (best > p->d - 2) best = p->d - 2;
    bc = lort__tt_mat_cost(p, best);
    for (m = best + 1; m <= p->d - 2; ++m)
        if ((c = lort__tt_mat_cost(p, m)) < bc) {
            bc = c;
            best = m;
        }
    *cost = bc;
    return best;
}

/* FLOP model of the core gradients (two GEMMs per core, never per entry; in float, which
   is plenty for ranking costs and keeps soft-float code out of embedded builds). Core k < split
   contracts dW directly with its prefix L and suffix R (the cheaper order); from core split on,
   a left environment E_k = L_k^T dW (t_k, N_>=k) is swept, E_{k+1} = G_k^T E_k, and
   dG_k += E_k R_k^T. split = d-1 is the plain per-core method; the sweep wins when the leading
   modes are large (E shrinks by n_k per step). The per-core method needs the prefixes P_k,
   k < split: the materialisation of W_tt then takes a prefix chain reaching split - 1
   (mid >= split - 1). */
LORT__PRIVATE void lort__tt_plan_split(lort__tt_plan *p) {
    int s, k, d = p->d;
    float best = 0.0f, N = (float)p->N, mat0;
    p->split = d - 1;
    p->esz = 0;
    p->mid = 0;
    if (d == 1) {
        p->split = 0;
        return;
    }
    for (s = 0; s < d; ++s) {
        float c = s > 0 ? 2.0f * (float)p->t[s] * N : 0.0f;
        for (k = 0; k < s; ++k) {
            float tl = (float)p->t[k], tr = (float)p->t[k + 1], ge = N / (float)p->lo[k];
            if (k == 0) c += 2.0f * tr * N;
            else if ((size_t)p->t[k] * p->hi[k] <= p->lo[k] * (size_t)p->t[k + 1])
                c += 2.0f * tl * N + 2.0f * tl * tr * ge;
            else c += 2.0f * tr * N + 2.0f * tl * tr * (float)p->lo[k] * (float)p->n[k];
        }
        for (k = s; k < d; ++k) /* use E_k, then advance it */
            c += (k < d - 1 ? 4.0f : 2.0f) * (float)p->t[k] * (float)p->t[k + 1] * N /
                 (float)p->lo[k];
        if (s == 0 || c < best) {
            best = c;
            p->split = s;
        }
    }
    p->mid = lort__tt_mat_best(p, p->split - 1, &mat0);
    p->gcost = 0.5f * best;
    for (k = 1; k <= d - 2; ++k) /* the suffix chain that lort__tt_grad builds first */
        p->gcost += (float)p->t[k] * (float)p->n[k] * (float)p->t[k + 1] * (float)p->hi[k];
    for (k = p->split > 1 ? p->split : 1; k < d; ++k) { /* E_k (t_k, N_>=k), k >= 1 */
        size_t e = 0;
        if (!lort__mul((size_t)p->t[k], p->N / p->lo[k], &e)) p->overflow = 1;
        if (e > p->esz) p->esz = e;
    }
}

/* The factored path's shape and its thresholds. Per row, X_k holds t[k] rows/lo[k] (k < fs),
   t[fs] p (k = fs) or lo[k]/rows t[k] (k > fs) floats; the MACs of core k are those times
   n[k] t[k+1] / (n[k] for k < fs, 1 for fs: p q = n[fs]). By MAC count against the dense
   path (W_tt materialised by lort__tt_prefix, mat MACs, then GEMMs of n N) over a training
   step, forward, dx and the core gradients:
       factored iff 3 n fx LORT__TT_THIN < mat + 3 n N + gcost
   (the dense path forms dW = x^T dy and pulls it back, gcost). A factored MAC counts
   LORT__TT_THIN times: its GEMMs have a TT rank as one dimension and run at about half the
   rate of the dense path's (measured, OpenBLAS and the built-in GEMM alike). Linear in n: "n
   below nf".
   One rule for forward and backward, with or without a cache, so that a forward gives the same
   bits with and without one and a cache always holds what backward reads. */
#define LORT__TT_THIN 2.0f
LORT__PRIVATE void lort__tt_plan_fact(lort__tt_plan *p) {
    int k, s = 0, d = p->d;
    size_t rows = (size_t)p->rows, in = 0, off = 0, big;
    float mat, e, thr;
    p->fs = -1;
    p->nf = 0;
    if (d == 1) return; /* W_tt is the core itself: nothing to save */
    while (s < d - 1 && p->lo[s + 1] < rows) ++s;
    if (rows % p->lo[s] || (size_t)p->n[s] % (rows / p->lo[s])) return;
    p->fs = s;
    p->fp = (int)(rows / p->lo[s]);
    p->fq = p->n[s] / p->fp;
    p->fx = 0.0f;
    p->gmax = rows > (size_t)p->cols ? rows : (size_t)p->cols;
    for (k = 0; k < d; ++k) {
        float t2 = (float)p->t[k] * (float)p->t[k + 1];
        if (k < s) {
            in = (size_t)p->t[k] * (rows / p->lo[k]);
            p->fx += t2 * (float)(rows / p->lo[k]);
        } else if (k == s) {
            in = (size_t)p->t[k] * (size_t)p->fp;
            p->fx += t2 * (float)p->n[k];
        } else {
            in = p->lo[k] / rows * (size_t)p->t[k];
            p->fx += t2 * (float)(p->lo[k] / rows) * (float)p->n[k];
        }
        p->xoff[k] = off;
        off += in; /* in <= a core's size or rows: no overflow */
        if (in > p->gmax) p->gmax = in;
    }
    p->xsz = off;
    (void)lort__tt_mat_best(p, p->mid, &mat);
    e = LORT__TT_THIN * p->fx - (float)p->N;
    big = (size_t)INT_MAX / (off > p->gmax ? off : p->gmax); /* GEMM dims n * per-row sizes */
    if (big > (size_t)INT_MAX - 1) big = (size_t)INT_MAX - 1;
    thr = e > 0.0f ? (mat + p->gcost) / (3.0f * e) : 0.0f;
    if (e <= 0.0f || thr >= (float)big) {
        p->nf = (int)big + 1;
    } else { /* n < thr  <=>  n < ceil(thr) */
        p->nf = (int)thr;
        if ((float)p->nf < thr) p->nf++;
    }
}
/* 1 when a call of n rows takes the factored path */
LORT__PRIVATE int lort__tt_fact(const lort__tt_plan *p, int n) { return n < p->nf; }
/* Rows the states must hold for calls of up to n rows (0: never factored). */
LORT__PRIVATE size_t lort__tt_fact_rows(const lort__tt_plan *p, int n) {
    return (size_t)(n < p->nf ? n : p->nf - 1 > 0 ? p->nf - 1 : 0);
}

/* Validates a tt desc in O(d) (d <= 16) and fills the plan. */
LORT__PRIVATE lort_status lort__tt_plan_make(const lort_tt_desc *desc, lort__tt_plan *p) {
    int k, d;
    size_t prod = 1, t;
    if (!desc) return LORT_ERR_NULL;
    memset(p, 0, sizeof(*p));
    d = desc->n_cores;
    if (d < 1 || d > LORT_TT_MAX_CORES || desc->rows <= 0 || desc->cols <= 0)
        return LORT_ERR_INVALID_ARG;
    p->d = d;
    p->rows = desc->rows;
    p->cols = desc->cols;
    for (k = 0; k <= d; ++k) {
        int r = desc->ranks[k];
        if (k == 0 || k == d) {
            if (r != 0 && r != 1) return LORT_ERR_INVALID_ARG;
            r = 1;
        } else if (r == 0) {
            r = desc->rank;
        }
        if (r <= 0) return LORT_ERR_INVALID_ARG;
        p->t[k] = r;
    }
    for (k = 0; k < d; ++k) {
        if (desc->modes[k] <= 0) return LORT_ERR_INVALID_ARG;
        p->n[k] = desc->modes[k];
    }
    if (!lort__mul((size_t)desc->rows, (size_t)desc->cols, &p->N) || p->N > (size_t)INT_MAX)
        return LORT_ERR_OVERFLOW;
    for (k = 0; k < d; ++k) { /* every partial product fits int (the GEMM dims are these) */
        p->lo[k] = prod;
        if (!lort__mul(prod, (size_t)p->n[k], &prod) || prod > (size_t)INT_MAX)
            return LORT_ERR_OVERFLOW;
        if (!lort__mul3((size_t)p->t[k], (size_t)p->n[k], (size_t)p->t[k + 1], &t) ||
            t > (size_t)INT_MAX || t > LORT__SIZE_LIMIT / sizeof(float) - p->coff[k])
            return LORT_ERR_OVERFLOW;
        p->coff[k + 1] = p->coff[k] + t;
    }
    p->lo[d] = prod;
    if (prod != p->N) return LORT_ERR_SHAPE;
    for (k = 0; k < d; ++k) p->hi[k] = p->N / (p->lo[k] * (size_t)p->n[k]);
    for (k = 1; k < d; ++k) { /* P_1 .. P_{d-1} */
        p->poff[k] = p->psz;
        if (!lort__mul(p->lo[k + 1], (size_t)p->t[k + 1], &t) || t > LORT__SIZE_LIMIT - p->psz)
            p->overflow = 1;
        else p->psz += t;
    }
    for (k = d - 2; k >= 1; --k) { /* S_1 .. S_{d-2} */
        size_t a = 0, b = 0;
        p->soff[k] = p->ssz;
        if (!lort__mul3((size_t)p->t[k], (size_t)p->n[k], p->hi[k], &t) ||
            t > LORT__SIZE_LIMIT - p->ssz)
            p->overflow = 1;
        else p->ssz += t;
        /* the temp of core k's gradient: the smaller of the two contraction orders */
        if (!lort__mul3(p->lo[k], (size_t)p->n[k], (size_t)p->t[k + 1], &b)) p->overflow = 1;
        a = t;
        t = a < b ? a : b;
        if (t > p->tmp) p->tmp = t;
    }
    lort__tt_plan_split(p);
    lort__tt_plan_fact(p);
    return LORT_OK;
}

/* The one layout of the tt family at n rows: work = P chain, S chain, dW (rows, cols), the
   per-core temp, two environment buffers (the dense path), then the factored path's states X
   and two buffers for their gradients; cache = the P chain, then the states of a training
   call. rep and adp embed this work layout as one slot per train (and add the states to
   their caches: lort__tt_cache_states). */
enum { LORT__TT_P, LORT__TT_S, LORT__TT_DW, LORT__TT_T, LORT__TT_E0, LORT__TT_E1, LORT__TT_X,
       LORT__TT_D0, LORT__TT_D1 };
enum { LORT__TTC_P, LORT__TTC_X }; /* the cache of lort_tt_forward */
LORT__PRIVATE void lort__tt_states(size_t rows, size_t per, lort__layout *L, int slot) {
    size_t t = 0;
    if (!lort__mul(rows, per, &t)) L->overflow = 1;
    lort__lay_put(L, slot, t);
}
LORT__PRIVATE void lort__tt_cache_states(const lort__tt_plan *p, int n, lort__layout *cache,
                                         int slot) {
    lort__tt_states(lort__tt_fact_rows(p, n), p->xsz, cache, slot);
}
LORT__PRIVATE void lort__tt_layout(const lort__tt_plan *p, int n, lort__layout *work,
                                   lort__layout *cache) {
    size_t m = lort__tt_fact_rows(p, n);
    if (p->overflow) work->overflow = 1;
    lort__lay_put(work, LORT__TT_P, p->psz);
    lort__lay_put(work, LORT__TT_S, p->ssz);
    lort__lay_put(work, LORT__TT_DW, p->N);
    lort__lay_put(work, LORT__TT_T, p->tmp);
    lort__lay_put(work, LORT__TT_E0, p->esz);
    lort__lay_put(work, LORT__TT_E1, p->esz);
    lort__tt_states(m, p->xsz, work, LORT__TT_X);
    lort__tt_states(m, p->gmax, work, LORT__TT_D0);
    lort__tt_states(m, p->gmax, work, LORT__TT_D1);
    if (cache) {
        if (p->overflow) cache->overflow = 1;
        lort__lay_put(cache, LORT__TTC_P, p->psz);
        lort__tt_cache_states(p, n, cache, LORT__TTC_X);
    }
}
/* Adds a tt train's work layout at n rows as one slot of a parent layout. */
LORT__PRIVATE void lort__tt_sublayout(const lort__tt_plan *p, int n, lort__layout *parent,
                                      int slot, lort__layout *sub) {
    lort__lay_init(sub);
    lort__tt_layout(p, n, sub, NULL);
    if (sub->overflow) parent->overflow = 1;
    lort__lay_put(parent, slot, sub->end / sizeof(float));
}

LORT__PRIVATE void lort__tt_grad(const lort__tt_plan *p, float *dcores, const float *dW,
                                 const float *cores, const float *P, float *S, float *T,
                                 float *E0, float *E1);
/* The gradient of a train embedded in a parent layout: its work is the slot at sb, laid out
   by sub, whose prefixes are already materialised and whose dW slot holds dW. */
LORT__PRIVATE void lort__tt_grad_sub(const lort__tt_plan *p, float *dcores, const float *cores,
                                     float *sb, const lort__layout *sub) {
    lort__tt_grad(p, dcores, lort__lay_slot(sb, sub, LORT__TT_DW), cores,
                  lort__lay_slot(sb, sub, LORT__TT_P), lort__lay_slot(sb, sub, LORT__TT_S),
                  lort__lay_slot(sb, sub, LORT__TT_T), lort__lay_slot(sb, sub, LORT__TT_E0),
                  lort__lay_slot(sb, sub, LORT__TT_E1));
}

LORT__PRIVATE const float *lort__tt_pref(const lort__tt_plan *p, const float *cores,
                                         const float *P, int k) {
    return k == 0 ? cores : P + p->poff[k];
}
LORT__PRIVATE const float *lort__tt_suf(const lort__tt_plan *p, const float *cores,
                                        const float *S, int k) {
    return k == p->d - 1 ? cores + p->coff[k] : S + p->soff[k];
}
/* W_tt = P_{d-1} (stored at its prefix slot), as P_mid S_{mid+1}: the prefixes P_k (lo[k+1],
   t[k+1]) = P_{k-1} (lo[k], t[k]) G_k for k <= mid, the suffixes S_k (t[k], n[k] hi[k]) =
   G_k (t[k] n[k], t[k+1]) S_{k+1} for k > mid, one GEMM each, then one GEMM. The prefixes
   P_k, k <= mid, stay valid (the per-core gradients of cores < split use them). */
LORT__PRIVATE const float *lort__tt_prefix(const lort__tt_plan *p, const float *cores, float *P,
                                           float *S) {
    int k, m = p->mid;
    if (p->d == 1) return cores;
    for (k = 1; k <= m; ++k) {
        int nt = p->n[k] * p->t[k + 1];
        lort__gemm(0, 0, (int)p->lo[k], nt, p->t[k], 1.0f, lort__tt_pref(p, cores, P, k - 1),
                   p->t[k], cores + p->coff[k], nt, 0.0f, P + p->poff[k], nt);
    }
    for (k = p->d - 2; k > m; --k)
        lort__gemm(0, 0, p->t[k] * p->n[k], (int)p->hi[k], p->t[k + 1], 1.0f,
                   cores + p->coff[k], p->t[k + 1], lort__tt_suf(p, cores, S, k + 1),
                   (int)p->hi[k], 0.0f, S + p->soff[k], (int)p->hi[k]);
    if (m < p->d - 1) {
        int rest = (int)(p->N / p->lo[m + 1]);
        lort__gemm(0, 0, (int)p->lo[m + 1], rest, p->t[m + 1], 1.0f,
                   lort__tt_pref(p, cores, P, m), p->t[m + 1], lort__tt_suf(p, cores, S, m + 1),
                   rest, 0.0f, P + p->poff[p->d - 1], rest);
    }
    return lort__tt_pref(p, cores, P, p->d - 1);
}

/* ---- the factored path: x meets one core at a time, W_tt is never formed ----------------
   With the row/column split inside core fs (lo[fs] p = rows, p q = n[fs]), core k's input at
   n rows is X_k (X_0 = x^T) and each core is one GEMM:
     k < fs  X_k (t[k] n[k], rest n), rest = rows / lo[k+1], n innermost:
             X_{k+1} (t[k+1], rest n) = G_k^T X_k, G_k viewed (t[k] n[k], t[k+1])
     k = fs  X_k (t[k] p, n):  X_{k+1} (n, q t[k+1]) = X_k^T G_k, G_k viewed (t[k] p, q t[k+1])
     k > fs  X_k (n c, t[k]), c = lo[k] / rows columns done:
             X_{k+1} (n c, n[k] t[k+1]) = X_k G_k, G_k viewed (t[k], n[k] t[k+1])
   and the last core's output, (n, cols), is y. The states live at n xoff[k] in X. */
LORT__PRIVATE void lort__tt_xfwd(const lort__tt_plan *p, const float *cores, float *X,
                                 const float *x, int n, float *y, float alpha, float beta) {
    int k, d = p->d, s = p->fs;
    size_t nn = (size_t)n;
    if (n == 1) memcpy(X, x, (size_t)p->rows * sizeof(float));
    else lort__transpose(X, x, nn, (size_t)p->rows);
    for (k = 0; k < d; ++k) {
        const float *in = X + nn * p->xoff[k], *G = cores + p->coff[k];
        int last = k == d - 1, tl = p->t[k], tr = p->t[k + 1], nk = p->n[k];
        float *out = last ? y : X + nn * p->xoff[k + 1];
        float a = last ? alpha : 1.0f, b = last ? beta : 0.0f;
        if (!out) break; /* states only */
        if (k < s) {
            int rn = (int)((size_t)p->rows / p->lo[k + 1] * nn);
            lort__gemm(1, 0, tr, rn, tl * nk, a, G, tr, in, rn, b, out, rn);
        } else if (k == s) {
            int qt = p->fq * tr;
            lort__gemm(1, 0, n, qt, tl * p->fp, a, in, n, G, qt, b, out, qt);
        } else {
            int nc = (int)(p->lo[k] / (size_t)p->rows * nn);
            lort__gemm(0, 0, nc, nk * tr, tl, a, in, tl, G, nk * tr, b, out, nk * tr);
        }
    }
}
/* The adjoint, right to left, from dY = alpha dy (n, cols): dcores += d<dY, x W_tt>/dcores
   (from the states X of lort__tt_xfwd; dcores NULL skips), dx (n, rows) = beta dx + dY W_tt^T
   (NULL skips). D0, D1: n gmax floats each. */
LORT__PRIVATE void lort__tt_xbwd(const lort__tt_plan *p, const float *cores, const float *X,
                                 const float *dy, float alpha, int n, float *dx, float beta,
                                 float *dcores, float *D0, float *D1) {
    int k, d = p->d, s = p->fs;
    size_t nn = (size_t)n;
    const float *dout = dy;
    for (k = d - 1; k >= 0; --k) {
        const float *G = cores + p->coff[k];
        int tl = p->t[k], tr = p->t[k + 1], nk = p->n[k];
        float a = k == d - 1 ? alpha : 1.0f, b = 0.0f, *din;
        if (dcores) {
            const float *in = X + nn * p->xoff[k];
            float *dG = dcores + p->coff[k];
            if (k < s) {
                int rn = (int)((size_t)p->rows / p->lo[k + 1] * nn);
                lort__gemm(0, 1, tl * nk, tr, rn, a, in, rn, dout, rn, 1.0f, dG, tr);
            } else if (k == s) {
                int qt = p->fq * tr;
                lort__gemm(0, 0, tl * p->fp, qt, n, a, in, n, dout, qt, 1.0f, dG, qt);
            } else {
                int nc = (int)(p->lo[k] / (size_t)p->rows * nn);
                lort__gemm(1, 0, tl, nk * tr, nc, a, in, tl, dout, nk * tr, 1.0f, dG, nk * tr);
            }
        }
        if (k == 0 && !dx) break;
        din = dout == D0 ? D1 : D0;
        if (k == 0 && n == 1) {
            din = dx;
            b = beta;
        }
        if (k < s) {
            int rn = (int)((size_t)p->rows / p->lo[k + 1] * nn);
            lort__gemm(0, 0, tl * nk, rn, tr, a, G, tr, dout, rn, b, din, rn);
        } else if (k == s) {
            int qt = p->fq * tr;
            lort__gemm(0, 1, tl * p->fp, n, qt, a, G, qt, dout, qt, b, din, n);
        } else {
            int nc = (int)(p->lo[k] / (size_t)p->rows * nn);
            lort__gemm(0, 1, nc, tl, nk * tr, a, dout, nk * tr, G, nk * tr, b, din, tl);
        }
        dout = din;
    }
    if (dx && n > 1) { /* dout (rows, n) */
        size_t i, j, r = (size_t)p->rows;
        if (lort__is_zero(beta)) memset(dx, 0, nn * r * sizeof(float));
        for (j = 0; j < r; ++j)
            for (i = 0; i < nn; ++i) dx[i * r + j] += dout[j * nn + i];
    }
}

/* dcores += pullback of dW (rows, cols), given the prefixes P. Suffixes S_k (t[k], n[k] hi[k])
   = G_k (t[k] n[k], t[k+1]) S_{k+1}, right to left, then per core k with L = P_{k-1}
   (lo[k], t[k]) and R = S_{k+1} (t[k+1], hi[k]):
     dG_k[a,i,b] += sum_{u,v} L[u,a] dW[u,i,v] R[b,v]     (dW viewed as (lo[k], n[k], hi[k]))
   as two GEMMs, contracting first the side that leaves the smaller temp. */
LORT__PRIVATE void lort__tt_grad(const lort__tt_plan *p, float *dcores, const float *dW,
                                 const float *cores, const float *P, float *S, float *T,
                                 float *E0, float *E1) {
    int d = p->d, k;
    const float *E;
    if (d == 1) {
        lort__axpy(dcores, 1.0f, dW, p->N);
        return;
    }
    for (k = d - 2; k >= 1; --k)
        lort__gemm(0, 0, p->t[k] * p->n[k], (int)p->hi[k], p->t[k + 1], 1.0f,
                   cores + p->coff[k], p->t[k + 1],
                   k + 1 == d - 1 ? cores + p->coff[k + 1] : S + p->soff[k + 1], (int)p->hi[k],
                   0.0f, S + p->soff[k], (int)p->hi[k]);
    for (k = 0; k < p->split; ++k) {
        int tl = p->t[k], nk = p->n[k], tr = p->t[k + 1], lo = (int)p->lo[k], hi = (int)p->hi[k];
        const float *L = k > 0 ? lort__tt_pref(p, cores, P, k - 1) : NULL;
        const float *R = k < d - 1 ? (k + 1 == d - 1 ? cores + p->coff[d - 1] : S + p->soff[k + 1])
                                   : NULL;
        float *dG = dcores + p->coff[k];
        if (k == 0) { /* dG_0 (n0, t1) += dW (n0, hi0) R^T */
            lort__gemm(0, 1, nk, tr, hi, 1.0f, dW, hi, R, hi, 1.0f, dG, tr);
        } else if (k == d - 1) { /* dG (t, n) += L^T dW (lo, n) */
            lort__gemm(1, 0, tl, nk, lo, 1.0f, L, tl, dW, nk, 1.0f, dG, nk);
        } else if ((size_t)tl * p->hi[k] <= p->lo[k] * (size_t)tr) {
            /* T (tl, nk hi) = L^T dW; dG (tl nk, tr) += T (tl nk, hi) R^T */
            lort__gemm(1, 0, tl, nk * hi, lo, 1.0f, L, tl, dW, nk * hi, 0.0f, T, nk * hi);
            lort__gemm(0, 1, tl * nk, tr, hi, 1.0f, T, hi, R, hi, 1.0f, dG, tr);
        } else {
            /* T (lo nk, tr) = dW (lo nk, hi) R^T; dG (tl, nk tr) += L^T T (lo, nk tr) */
            lort__gemm(0, 1, lo * nk, tr, hi, 1.0f, dW, hi, R, hi, 0.0f, T, tr);
            lort__gemm(1, 0, tl, nk * tr, lo, 1.0f, L, tl, T, nk * tr, 1.0f, dG, nk * tr);
        }
    }
    /* the sweep: E_split = L^T dW (t, N_>=split) (dW itself for split 0), then per core
       dG_k (t_k n_k, t_k+1) += E_k (t_k n_k, hi) R^T and E_{k+1} (t_k+1, hi) = G_k^T E_k */
    k = p->split;
    E = dW;
    if (k > 0) {
        int ge = (int)(p->N / p->lo[k]);
        lort__gemm(1, 0, p->t[k], ge, (int)p->lo[k], 1.0f, lort__tt_pref(p, cores, P, k - 1),
                   p->t[k], dW, ge, 0.0f, E0, ge);
        E = E0;
    }
    for (; k < d; ++k) {
        int tl = p->t[k], nk = p->n[k], tr = p->t[k + 1], hi = (int)p->hi[k];
        float *dG = dcores + p->coff[k], *En = E == E0 ? E1 : E0;
        if (k == d - 1) {
            lort__axpy(dG, 1.0f, E, (size_t)tl * (size_t)nk);
            break;
        }
        lort__gemm(0, 1, tl * nk, tr, hi, 1.0f, E, hi,
                   k + 1 == d - 1 ? cores + p->coff[d - 1] : S + p->soff[k + 1], hi, 1.0f, dG, tr);
        lort__gemm(1, 0, tr, hi, tl * nk, 1.0f, cores + p->coff[k], tr, E, hi, 0.0f, En, hi);
        E = En;
    }
}

/* LoRETTA's init of one train (sigma^2 = 1/(rows + cols)). */
LORT__PRIVATE void lort__tt_init(const lort__tt_plan *p, float *cores, lort_rng *rng) {
    double s2 = pow(1.0 / ((double)p->rows + (double)p->cols), 1.0 / (double)p->d);
    int k;
    size_t i;
    for (k = 0; k < p->d; ++k) {
        float sd = (float)sqrt(s2 / (double)p->t[k + 1]);
        for (i = p->coff[k]; i < p->coff[k + 1]; ++i) cores[i] = sd * lort_rng_normal(rng);
    }
}

LORT__PRIVATE lort_status lort__tt_plan_n(const lort_tt_desc *d, int n, lort__tt_plan *p,
                                          lort__layout *work, lort__layout *cache) {
    lort_status st;
    if ((st = lort__tt_plan_make(d, p))) return st;
    if ((st = lort__rows_check(n, d->rows, d->cols))) return st;
    lort__lay_init(work);
    lort__lay_init(cache);
    lort__tt_layout(p, n, work, cache);
    return LORT_OK;
}

LORT_DEF lort_status lort_tt_desc_resolve(const lort_tt_desc *desc, lort_tt_desc *out) {
    lort__tt_plan p;
    lort_status st;
    int k;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__tt_plan_make(desc, &p))) return st;
    *out = *desc;
    for (k = 0; k <= p.d; ++k) out->ranks[k] = p.t[k];
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_param_count(const lort_tt_desc *desc, size_t *count) {
    lort__tt_plan p;
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__tt_plan_make(desc, &p))) return st;
    *count = p.coff[p.d];
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_cache_size(const lort_tt_desc *desc, int n, size_t *bytes) {
    lort__tt_plan p;
    lort__layout w, c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_plan_n(desc, n, &p, &w, &c))) return st;
    return lort__lay_bytes(&c, bytes);
}
LORT_DEF lort_status lort_tt_workspace_size(const lort_tt_desc *desc, int n, size_t *bytes) {
    lort__tt_plan p;
    lort__layout w, c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_plan_n(desc, n, &p, &w, &c))) return st;
    return lort__lay_bytes(&w, bytes);
}
LORT_DEF lort_status lort_tt_init(const lort_tt_desc *desc, float *cores, lort_rng *rng) {
    lort__tt_plan p;
    lort_status st;
    if ((st = lort__tt_plan_make(desc, &p))) return st;
    if (!cores || !rng) return LORT_ERR_NULL;
    lort__tt_init(&p, cores, rng);
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_to_dense(const lort_tt_desc *desc, float *W, const float *cores,
                                      void *work, size_t work_size) {
    lort__tt_plan p;
    lort__layout w, c;
    lort_status st;
    const float *Wt;
    if ((st = lort__tt_plan_n(desc, 1, &p, &w, &c))) return st;
    if (!W || !cores) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&w, work, work_size, LORT_ERR_WORKSPACE))) return st;
    LORT__DEBUG_FINITE(cores, p.coff[p.d]);
    Wt = lort__tt_prefix(&p, cores, lort__lay_slot(lort__lay_base(work), &w, LORT__TT_P),
                         lort__lay_slot(lort__lay_base(work), &w, LORT__TT_S));
    memcpy(W, Wt, p.N * sizeof(float));
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_grad_dense(const lort_tt_desc *desc, float *dcores, const float *dW,
                                        const float *cores, void *work, size_t work_size) {
    lort__tt_plan p;
    lort__layout w, c;
    lort_status st;
    float *base, *P;
    if ((st = lort__tt_plan_n(desc, 1, &p, &w, &c))) return st;
    if (!dcores || !dW || !cores) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&w, work, work_size, LORT_ERR_WORKSPACE))) return st;
    LORT__DEBUG_FINITE(cores, p.coff[p.d]);
    LORT__DEBUG_FINITE(dW, p.N);
    base = lort__lay_base(work);
    P = lort__lay_slot(base, &w, LORT__TT_P);
    (void)lort__tt_prefix(&p, cores, P, lort__lay_slot(base, &w, LORT__TT_S));
    lort__tt_grad(&p, dcores, dW, cores, P, lort__lay_slot(base, &w, LORT__TT_S),
                  lort__lay_slot(base, &w, LORT__TT_T), lort__lay_slot(base, &w, LORT__TT_E0),
                  lort__lay_slot(base, &w, LORT__TT_E1));
    return LORT_OK;
}

/* y += s (x W_tt + bias); W NULL: only the bias */
LORT__PRIVATE void lort__tt_apply(const lort__tt_plan *p, float *y, const float *x,
                                  const float *W, const float *bias, int n, float s) {
    int i, j;
    if (W) lort__gemm(0, 0, n, p->cols, p->rows, s, x, p->rows, W, p->cols, 1.0f, y, p->cols);
    if (bias)
        for (i = 0; i < n; ++i)
            for (j = 0; j < p->cols; ++j) y[(size_t)i * (size_t)p->cols + (size_t)j] += s * bias[j];
}
/* db (m) += s * sum over the n rows of g (n, m) */
LORT__PRIVATE void lort__colsum(float *db, const float *g, int n, int m, float s) {
    int i, j;
    for (i = 0; i < n; ++i)
        for (j = 0; j < m; ++j) db[j] += s * g[(size_t)i * (size_t)m + (size_t)j];
}

LORT_DEF lort_status lort_tt_forward(const lort_tt_desc *desc, float *y, const float *x,
                                     const float *cores, const float *bias, int n, void *cache,
                                     size_t cache_size, void *work, size_t work_size) {
    lort__tt_plan p;
    lort__layout w, c;
    lort_status st;
    float *P;
    if ((st = lort__tt_plan_n(desc, n, &p, &w, &c))) return st;
    if (!y || !x || !cores) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)p.rows);
    LORT__DEBUG_FINITE(cores, p.coff[p.d]);
    LORT__DEBUG_FINITE(bias, (size_t)p.cols);
    if (lort__tt_fact(&p, n)) {
        float *X = cache ? lort__lay_slot(lort__lay_base(cache), &c, LORT__TTC_X)
                         : lort__lay_slot(lort__lay_base(work), &w, LORT__TT_X);
        lort__tt_xfwd(&p, cores, X, x, n, y, 1.0f, 1.0f);
        if (bias) lort__tt_apply(&p, y, NULL, NULL, bias, n, 1.0f);
        return LORT_OK;
    }
    P = cache ? lort__lay_slot(lort__lay_base(cache), &c, LORT__TTC_P)
              : lort__lay_slot(lort__lay_base(work), &w, LORT__TT_P);
    lort__tt_apply(&p, y, x,
                   lort__tt_prefix(&p, cores, P,
                                   lort__lay_slot(lort__lay_base(work), &w, LORT__TT_S)),
                   bias, n, 1.0f);
    return LORT_OK;
}

LORT_DEF lort_status lort_tt_backward(const lort_tt_desc *desc, float *dx, float *dcores,
                                      float *dbias, const float *dy, const float *x,
                                      const float *cores, int n, const void *cache,
                                      size_t cache_size, void *work, size_t work_size) {
    lort__tt_plan p;
    lort__layout w, c;
    lort_status st;
    float *base, *dW;
    const float *P, *W;
    if ((st = lort__tt_plan_n(desc, n, &p, &w, &c))) return st;
    if (!dy || !cores || (dcores && !x)) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)p.cols);
    LORT__DEBUG_FINITE(x, dcores ? (size_t)n * (size_t)p.rows : 0);
    LORT__DEBUG_FINITE(cores, p.coff[p.d]);
    base = lort__lay_base(work);
    if (lort__tt_fact(&p, n)) {
        float *X = lort__lay_slot(base, &w, LORT__TT_X);
        if (cache) X = lort__lay_slot(lort__lay_base((void *)(uintptr_t)cache), &c, LORT__TTC_X);
        else if (dcores) lort__tt_xfwd(&p, cores, X, x, n, NULL, 1.0f, 0.0f);
        if (dbias) lort__colsum(dbias, dy, n, p.cols, 1.0f);
        if (dx || dcores)
            lort__tt_xbwd(&p, cores, X, dy, 1.0f, n, dx, 1.0f, dcores,
                          lort__lay_slot(base, &w, LORT__TT_D0),
                          lort__lay_slot(base, &w, LORT__TT_D1));
        return LORT_OK;
    }
    if (cache) {
        P = lort__lay_slot(lort__lay_base((void *)(uintptr_t)cache), &c, LORT__TTC_P);
        W = lort__tt_pref(&p, cores, P, p.d - 1);
    } else {
        float *Pw = lort__lay_slot(base, &w, LORT__TT_P);
        W = dx || dcores ? lort__tt_prefix(&p, cores, Pw, lort__lay_slot(base, &w, LORT__TT_S))
                         : NULL;
        P = Pw;
    }
    if (dbias) lort__colsum(dbias, dy, n, p.cols, 1.0f);
    if (dcores) {
        dW = lort__lay_slot(base, &w, LORT__TT_DW);
        lort__gemm(1, 0, p.rows, p.cols, n, 1.0f, x, p.rows, dy, p.cols, 0.0f, dW, p.cols);
        lort__tt_grad(&p, dcores, dW, cores, P, lort__lay_slot(base, &w, LORT__TT_S),
                      lort__lay_slot(base, &w, LORT__TT_T), lort__lay_slot(base, &w, LORT__TT_E0),
                      lort__lay_slot(base, &w, LORT__TT_E1));
    }
    if (dx) lort__gemm(0, 1, n, p.rows, p.cols, 1.0f, dy, p.cols, W, p.cols, 1.0f, dx, p.rows);
    return LORT_OK;
}

/* A tt desc embedded in an adapter: rows/cols 0 take the adapter's shape; others must match. */
LORT__PRIVATE lort_status lort__tt_embed(const lort_tt_desc *in, int rows, int cols,
                                         lort_tt_desc *out) {
    *out = *in;
    if (out->rows == 0) out->rows = rows;
    if (out->cols == 0) out->cols = cols;
    return out->rows == rows && out->cols == cols ? LORT_OK : LORT_ERR_SHAPE;
}

/* ---- TT-SVD and rounding of the tt form (the engine is >>train) ---------------------- */

LORT_DEF lort_status lort_tt_round_workspace_size(const lort_tt_desc *from,
                                                  const lort_tt_desc *to, size_t *bytes) {
    lort__train F, G;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_train(from, &F)) || (st = lort__tt_train(to, &G))) return st;
    return lort__round_call(&F, NULL, &G, NULL, NULL, NULL, 0, bytes);
}
LORT_DEF lort_status lort_tt_round(const lort_tt_desc *from, const lort_tt_desc *to,
                                   float *cores_out, float *err_bound, const float *cores_in,
                                   void *work, size_t work_size) {
    lort__train F, G;
    lort_status st;
    if ((st = lort__tt_train(from, &F)) || (st = lort__tt_train(to, &G))) return st;
    return lort__round_call(&F, cores_in, &G, cores_out, err_bound, work, work_size, NULL);
}

LORT_DEF lort_status lort_tt_svd_workspace_size(const lort_tt_desc *desc,
                                                const lort_svd_opts *opts, size_t *bytes) {
    lort__train T;
    lort__layout L;
    size_t sb;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_train(desc, &T)) || (st = lort__ttsvd_layout(&T, opts, &L, &sb))) return st;
    return lort__lay_bytes(&L, bytes);
}
LORT_DEF lort_status lort_tt_svd(const lort_tt_desc *desc, float *cores, float *err,
                                 const float *W, const lort_svd_opts *opts, void *work,
                                 size_t work_size) {
    lort__train T;
    lort__layout L;
    size_t sb;
    double e2 = 0.0;
    lort_status st;
    if ((st = lort__tt_train(desc, &T)) || (st = lort__ttsvd_layout(&T, opts, &L, &sb))) return st;
    if (!cores || !W) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    if ((st = lort__ttsvd(&T, W, opts, err ? &e2 : NULL, lort__lay_base(work), &L, sb))) return st;
    memcpy(cores, lort__lay_slot(lort__lay_base(work), &L, LORT__TS_OUT),
           T.off[T.d] * sizeof(float));
    if (err) *err = (float)sqrt(e2);
    return LORT_OK;
}

#endif /* LORT__HAS_TT */

// >>tt_rep =============================================================================== impl
#if LORT__HAS_TT_REP

/* Validated rep: scale, and the plans of W_A (d_in, r) and W_B (r, d_out). */
LORT__PRIVATE lort_status lort__tt_rep_check(const lort_tt_rep_desc *d, float *scale,
                                             lort__tt_plan *pa, lort__tt_plan *pb) {
    lort_tt_desc ta, tb;
    lort_status st;
    if (!d) return LORT_ERR_NULL;
    if ((st = lort__lowrank_check(d->d_in, d->d_out, d->r, d->alpha, d->dropout, scale, 0)))
        return st;
    if ((st = lort__tt_embed(&d->A, d->d_in, d->r, &ta)) ||
        (st = lort__tt_embed(&d->B, d->r, d->d_out, &tb)) || (st = lort__tt_plan_make(&ta, pa)) ||
        (st = lort__tt_plan_make(&tb, pb)))
        return st;
    return LORT_OK;
}

/* The one layout of tt_rep: lora's slots (so the low-rank pipeline runs on them), then the
   transposed factors A = W_A^T (r, d_in), B = W_B^T (d_out, r), their gradients, and the work
   of each train. cache: H (n, r), then the factored path's states of each train (empty when
   neither is factored at n rows). */
enum { LORT__TR_A = LORT__LR_M + 1, LORT__TR_B, LORT__TR_DA, LORT__TR_DB, LORT__TR_TA,
       LORT__TR_TB };
enum { LORT__TRC_H, LORT__TRC_XA, LORT__TRC_XB };
LORT__PRIVATE lort_status lort__tt_rep_plan(const lort_tt_rep_desc *d, int n, float *scale,
                                            lort__tt_plan *pa, lort__tt_plan *pb,
                                            lort__layout *work, lort__layout *cache,
                                            lort__layout *sa, lort__layout *sb) {
    lort_status st;
    size_t ra = (size_t)d->r * (size_t)d->d_in, rb = (size_t)d->r * (size_t)d->d_out;
    if ((st = lort__tt_rep_check(d, scale, pa, pb))) return st;
    if ((st = lort__rows_check(n, d->d_in, d->d_out))) return st;
    lort__lay_init(work);
    lort__lay_init(cache);
    lort__lowrank_layout(d->d_in, d->d_out, d->r, d->dropout, n, 0, work, cache);
    lort__lay_put(work, LORT__TR_A, ra);
    lort__lay_put(work, LORT__TR_B, rb);
    lort__lay_put(work, LORT__TR_DA, ra);
    lort__lay_put(work, LORT__TR_DB, rb);
    lort__tt_sublayout(pa, n, work, LORT__TR_TA, sa);
    lort__tt_sublayout(pb, n, work, LORT__TR_TB, sb);
    lort__tt_cache_states(pa, n, cache, LORT__TRC_XA);
    lort__tt_cache_states(pb, n, cache, LORT__TRC_XB);
    return LORT_OK;
}

/* W_A and W_B materialised in their trains' work; A = W_A^T, B = W_B^T in the rep slots. */
typedef struct lort__tt_rep_run {
    float *base, *sbA, *sbB, *A, *B;
    const float *WA, *WB;
} lort__tt_rep_run;
LORT__PRIVATE void lort__tt_rep_factors(const lort_tt_rep_desc *d, const lort__tt_plan *pa,
                                        const lort__tt_plan *pb, const lort__layout *w,
                                        const lort__layout *sa, const lort__layout *sb,
                                        const float *params, void *work, int transpose,
                                        lort__tt_rep_run *R) {
    R->base = lort__lay_base(work);
    R->sbA = lort__lay_slot(R->base, w, LORT__TR_TA);
    R->sbB = lort__lay_slot(R->base, w, LORT__TR_TB);
    R->WA = lort__tt_prefix(pa, params, lort__lay_slot(R->sbA, sa, LORT__TT_P),
                            lort__lay_slot(R->sbA, sa, LORT__TT_S));
    R->WB = lort__tt_prefix(pb, params + pa->coff[pa->d], lort__lay_slot(R->sbB, sb, LORT__TT_P),
                            lort__lay_slot(R->sbB, sb, LORT__TT_S));
    R->A = lort__lay_slot(R->base, w, LORT__TR_A);
    R->B = lort__lay_slot(R->base, w, LORT__TR_B);
    if (transpose) {
        lort__transpose(R->A, R->WA, (size_t)d->d_in, (size_t)d->r);
        lort__transpose(R->B, R->WB, (size_t)d->r, (size_t)d->d_out);
    }
}

LORT_DEF lort_status lort_tt_rep_desc_resolve(const lort_tt_rep_desc *desc,
                                              lort_tt_rep_desc *out) {
    lort__tt_plan pa, pb;
    lort_status st;
    lort_tt_rep_desc o;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__tt_rep_check(desc, NULL, &pa, &pb))) return st;
    o = *desc;
    if (lort__is_zero(o.alpha)) o.alpha = (float)o.r;
    (void)lort__tt_embed(&desc->A, desc->d_in, desc->r, &o.A);
    (void)lort__tt_embed(&desc->B, desc->r, desc->d_out, &o.B);
    if ((st = lort_tt_desc_resolve(&o.A, &o.A)) || (st = lort_tt_desc_resolve(&o.B, &o.B)))
        return st;
    *out = o;
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_rep_scale(const lort_tt_rep_desc *desc, float *scale) {
    lort__tt_plan pa, pb;
    if (!scale) return LORT_ERR_NULL;
    return lort__tt_rep_check(desc, scale, &pa, &pb);
}
LORT_DEF lort_status lort_tt_rep_param_count(const lort_tt_rep_desc *desc, size_t *count) {
    lort__tt_plan pa, pb;
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__tt_rep_check(desc, NULL, &pa, &pb))) return st;
    *count = pa.coff[pa.d] + pb.coff[pb.d];
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_rep_cache_size(const lort_tt_rep_desc *desc, int n, size_t *bytes) {
    lort__tt_plan pa, pb;
    lort__layout w, c, sa, sb;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_rep_plan(desc, n, NULL, &pa, &pb, &w, &c, &sa, &sb))) return st;
    return lort__lay_bytes(&c, bytes);
}
LORT_DEF lort_status lort_tt_rep_workspace_size(const lort_tt_rep_desc *desc, int n,
                                                size_t *bytes) {
    lort__tt_plan pa, pb;
    lort__layout w, c, sa, sb;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_rep_plan(desc, n, NULL, &pa, &pb, &w, &c, &sa, &sb))) return st;
    return lort__lay_bytes(&w, bytes);
}
LORT_DEF lort_status lort_tt_rep_init(const lort_tt_rep_desc *desc, float *params,
                                      lort_rng *rng) {
    lort__tt_plan pa, pb;
    lort_status st;
    if ((st = lort__tt_rep_check(desc, NULL, &pa, &pb))) return st;
    if (!params || !rng) return LORT_ERR_NULL;
    lort__tt_init(&pa, params, rng);
    lort__tt_init(&pb, params + pa.coff[pa.d], rng);
    return LORT_OK;
}

/* A call where a train takes the factored path (lort__tt_xfwd), train by train; a dense train
   is materialised and applied by one GEMM. H = drop(x) W_A (cache), y += s H W_B. */
LORT__PRIVATE void lort__tt_rep_fwd(const lort_tt_rep_desc *d, const lort__tt_plan *pa,
                                    const lort__tt_plan *pb, const lort__layout *w,
                                    const lort__layout *c, const lort__layout *sa,
                                    const lort__layout *sb, float s, float *y, const float *x,
                                    const float *params, int n, void *cache, void *work) {
    float *base = lort__lay_base(work), *cb = cache ? lort__lay_base(cache) : NULL;
    float *sbA = lort__lay_slot(base, w, LORT__TR_TA), *sbB = lort__lay_slot(base, w, LORT__TR_TB);
    float *H = cb ? lort__lay_slot(cb, c, LORT__TRC_H) : lort__lay_slot(base, w, LORT__LR_H);
    const float *U = x, *GB = params + pa->coff[pa->d];
    int r = d->r;
    if (d->dropout > 0.0f) {
        float *xd = lort__lay_slot(base, w, LORT__LR_XD);
        lort__dropout(d->dropout_seed, d->dropout, n, d->d_in, xd, x);
        U = xd;
    }
    if (lort__tt_fact(pa, n)) {
        lort__tt_xfwd(pa, params, cb ? lort__lay_slot(cb, c, LORT__TRC_XA)
                                     : lort__lay_slot(sbA, sa, LORT__TT_X),
                      U, n, H, 1.0f, 0.0f);
    } else {
        const float *WA = lort__tt_prefix(pa, params, lort__lay_slot(sbA, sa, LORT__TT_P),
                                          lort__lay_slot(sbA, sa, LORT__TT_S));
        lort__gemm(0, 0, n, r, d->d_in, 1.0f, U, d->d_in, WA, r, 0.0f, H, r);
    }
    if (lort__tt_fact(pb, n)) {
        lort__tt_xfwd(pb, GB, cb ? lort__lay_slot(cb, c, LORT__TRC_XB)
                                 : lort__lay_slot(sbB, sb, LORT__TT_X),
                      H, n, y, s, 1.0f);
    } else {
        const float *WB = lort__tt_prefix(pb, GB, lort__lay_slot(sbB, sb, LORT__TT_P),
                                          lort__lay_slot(sbB, sb, LORT__TT_S));
        lort__gemm(0, 0, n, d->d_out, r, s, H, r, WB, d->d_out, 1.0f, y, d->d_out);
    }
}
/* The backward of lort__tt_rep_fwd: dH = s dy W_B^T (G slot) and dW_B, then dx += drop'(dH
   W_A^T) and dW_A. The states come from the cache, or are recomputed (with H) when missing. */
LORT__PRIVATE void lort__tt_rep_bwd(const lort_tt_rep_desc *d, const lort__tt_plan *pa,
                                    const lort__tt_plan *pb, const lort__layout *w,
                                    const lort__layout *c, const lort__layout *sa,
                                    const lort__layout *sb, float s, float *dx, float *dparams,
                                    const float *dy, const float *x, const float *params, int n,
                                    const void *cache, void *work) {
    float *base = lort__lay_base(work), *cb = NULL, *H, *XA, *XB, *U = NULL;
    float *sbA = lort__lay_slot(base, w, LORT__TR_TA), *sbB = lort__lay_slot(base, w, LORT__TR_TB);
    float *dH = lort__lay_slot(base, w, LORT__LR_G), *xd = lort__lay_slot(base, w, LORT__LR_XD);
    const float *GB = params + pa->coff[pa->d], *WA = NULL, *WB = NULL;
    float *dGA = dparams, *dGB = dparams ? dparams + pa->coff[pa->d] : NULL;
    int r = d->r, fa = lort__tt_fact(pa, n), fb = lort__tt_fact(pb, n);
    XA = lort__lay_slot(sbA, sa, LORT__TT_X);
    XB = lort__lay_slot(sbB, sb, LORT__TT_X);
    H = lort__lay_slot(base, w, LORT__LR_H);
    if (!fa || dparams) { /* U = drop(x): dW_A (dense) or the states of A (recomputed) */
        U = (float *)(uintptr_t)x;
        if (d->dropout > 0.0f) {
            lort__dropout(d->dropout_seed, d->dropout, n, d->d_in, xd, x);
            U = xd;
        }
    }
    if (!fa) WA = lort__tt_prefix(pa, params, lort__lay_slot(sbA, sa, LORT__TT_P),
                                  lort__lay_slot(sbA, sa, LORT__TT_S));
    if (!fb) WB = lort__tt_prefix(pb, GB, lort__lay_slot(sbB, sb, LORT__TT_P),
                                  lort__lay_slot(sbB, sb, LORT__TT_S));
    if (cache) {
        cb = lort__lay_base((void *)(uintptr_t)cache);
        H = lort__lay_slot(cb, c, LORT__TRC_H);
        XA = lort__lay_slot(cb, c, LORT__TRC_XA);
        XB = lort__lay_slot(cb, c, LORT__TRC_XB);
    } else if (dparams) { /* H and the states, as forward */
        if (fa) lort__tt_xfwd(pa, params, XA, U, n, H, 1.0f, 0.0f);
        else lort__gemm(0, 0, n, r, d->d_in, 1.0f, U, d->d_in, WA, r, 0.0f, H, r);
        if (fb) lort__tt_xfwd(pb, GB, XB, H, n, NULL, 1.0f, 0.0f);
    }
    if (fb) {
        lort__tt_xbwd(pb, GB, XB, dy, s, n, dH, 0.0f, dGB, lort__lay_slot(sbB, sb, LORT__TT_D0),
                      lort__lay_slot(sbB, sb, LORT__TT_D1));
    } else {
        lort__gemm(0, 1, n, r, d->d_out, s, dy, d->d_out, WB, d->d_out, 0.0f, dH, r);
        if (dGB) {
            lort__gemm(1, 0, r, d->d_out, n, s, H, r, dy, d->d_out, 0.0f,
                       lort__lay_slot(sbB, sb, LORT__TT_DW), d->d_out);
            lort__tt_grad_sub(pb, dGB, GB, sbB, sb);
        }
    }
    if (!fa && dGA) {
        lort__gemm(1, 0, d->d_in, r, n, 1.0f, U, d->d_in, dH, r, 0.0f,
                   lort__lay_slot(sbA, sa, LORT__TT_DW), r);
        lort__tt_grad_sub(pa, dGA, params, sbA, sa);
    }
    /* dx: straight in, or through the dropout mask (xd is free again: U is used) */
    if (fa) {
        int masked = dx && d->dropout > 0.0f;
        lort__tt_xbwd(pa, params, XA, dH, 1.0f, n, masked ? xd : dx, masked ? 0.0f : 1.0f, dGA,
                      lort__lay_slot(sbA, sa, LORT__TT_D0), lort__lay_slot(sbA, sa, LORT__TT_D1));
        if (masked) lort__dropout_add(d->dropout_seed, d->dropout, n, d->d_in, dx, xd);
    } else if (dx) {
        if (d->dropout > 0.0f) {
            lort__gemm(0, 1, n, d->d_in, r, 1.0f, dH, r, WA, r, 0.0f, xd, d->d_in);
            lort__dropout_add(d->dropout_seed, d->dropout, n, d->d_in, dx, xd);
        } else {
            lort__gemm(0, 1, n, d->d_in, r, 1.0f, dH, r, WA, r, 1.0f, dx, d->d_in);
        }
    }
}

/* forward: W_A, W_B by their prefix chains, transposed into lora's (A, B), then lora's
   pipeline: H = drop(x) W_A (cache), y += s H W_B. At few rows a train is contracted with x
   core by core instead (lort__tt_rep_fwd). */
LORT_DEF lort_status lort_tt_rep_forward(const lort_tt_rep_desc *desc, float *y, const float *x,
                                         const float *params, int n, void *cache,
                                         size_t cache_size, void *work, size_t work_size) {
    lort__lowrank P;
    lort__tt_plan pa, pb;
    lort__layout w, c, sa, sb;
    lort__tt_rep_run R;
    lort_status st;
    float s, *H;
    if ((st = lort__tt_rep_plan(desc, n, &s, &pa, &pb, &w, &c, &sa, &sb))) return st;
    if (!y || !x || !params) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(params, pa.coff[pa.d] + pb.coff[pb.d]);
    if (lort__tt_fact(&pa, n) || lort__tt_fact(&pb, n)) {
        lort__tt_rep_fwd(desc, &pa, &pb, &w, &c, &sa, &sb, s, y, x, params, n, cache, work);
        return LORT_OK;
    }
    lort__tt_rep_factors(desc, &pa, &pb, &w, &sa, &sb, params, work, 1, &R);
    H = cache ? lort__lay_base(cache) : lort__lay_slot(R.base, &w, LORT__LR_H);
    lort__lowrank_init(&P, desc->d_in, desc->d_out, desc->r, s, desc->dropout,
                       desc->dropout_seed, R.base, &w);
    P.A = R.A;
    P.B = R.B;
    lort__lowrank_forward(&P, y, x, n, H);
    return LORT_OK;
}

/* backward: lora's pipeline gives dA = dW_A^T and dB = dW_B^T (accumulated from zero); each is
   transposed into its train's dW and pulled back to the cores. */
LORT_DEF lort_status lort_tt_rep_backward(const lort_tt_rep_desc *desc, float *dx,
                                          float *dparams, const float *dy, const float *x,
                                          const float *params, int n, const void *cache,
                                          size_t cache_size, void *work, size_t work_size) {
    lort__tt_plan pa, pb;
    lort__layout w, c, sa, sb;
    lort__tt_rep_run R;
    lort__lowrank P;
    lort_status st;
    float s, *dA = NULL, *dB = NULL, *dWA, *dWB;
    size_t ra = (size_t)0, rb = (size_t)0;
    if ((st = lort__tt_rep_plan(desc, n, &s, &pa, &pb, &w, &c, &sa, &sb))) return st;
    if (!dy || !x || !params) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)desc->d_out);
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)desc->d_in);
    LORT__DEBUG_FINITE(params, pa.coff[pa.d] + pb.coff[pb.d]);
    if (!dx && !dparams) return LORT_OK;
    if (lort__tt_fact(&pa, n) || lort__tt_fact(&pb, n)) {
        lort__tt_rep_bwd(desc, &pa, &pb, &w, &c, &sa, &sb, s, dx, dparams, dy, x, params, n,
                         cache, work);
        return LORT_OK;
    }
    lort__tt_rep_factors(desc, &pa, &pb, &w, &sa, &sb, params, work, 1, &R);
    if (dparams) {
        ra = (size_t)desc->r * (size_t)desc->d_in;
        rb = (size_t)desc->r * (size_t)desc->d_out;
        dA = lort__lay_slot(R.base, &w, LORT__TR_DA);
        dB = lort__lay_slot(R.base, &w, LORT__TR_DB);
        memset(dA, 0, ra * sizeof(float));
        memset(dB, 0, rb * sizeof(float));
    }
    lort__lowrank_init(&P, desc->d_in, desc->d_out, desc->r, s, desc->dropout,
                       desc->dropout_seed, R.base, &w);
    P.A = R.A;
    P.B = R.B;
    lort__lowrank_backward(&P, dx, dA, dB, NULL, dy, x, n,
                           cache ? lort__lay_base((void *)(uintptr_t)cache) : NULL);
    if (!dparams) return LORT_OK;
    dWA = lort__lay_slot(R.sbA, &sa, LORT__TT_DW);
    dWB = lort__lay_slot(R.sbB, &sb, LORT__TT_DW);
    lort__transpose(dWA, dA, (size_t)desc->r, (size_t)desc->d_in);
    lort__transpose(dWB, dB, (size_t)desc->d_out, (size_t)desc->r);
    lort__tt_grad_sub(&pa, dparams, params, R.sbA, &sa);
    lort__tt_grad_sub(&pb, dparams + pa.coff[pa.d], params + pa.coff[pa.d], R.sbB, &sb);
    return LORT_OK;
}

/* W = beta W + weight s W_B^T W_A^T (d_out, d_in) */
LORT__PRIVATE lort_status lort__tt_rep_dense(const lort_tt_rep_desc *d, float *W,
                                             const float *params, float weight, float beta,
                                             void *work, size_t work_size) {
    lort__tt_plan pa, pb;
    lort__layout w, c, sa, sb;
    lort__tt_rep_run R;
    lort_status st;
    float s;
    if ((st = lort__tt_rep_plan(d, 1, &s, &pa, &pb, &w, &c, &sa, &sb))) return st;
    if (!W || !params) return LORT_ERR_NULL;
    if (!lort__finite(weight)) return LORT_ERR_INVALID_ARG;
    if ((st = lort__lay_check(&w, work, work_size, LORT_ERR_WORKSPACE))) return st;
    LORT__DEBUG_FINITE(params, pa.coff[pa.d] + pb.coff[pb.d]);
    lort__tt_rep_factors(d, &pa, &pb, &w, &sa, &sb, params, work, 0, &R);
    lort__gemm(1, 1, d->d_out, d->d_in, d->r, weight * s, R.WB, d->d_out, R.WA, d->r, beta, W,
               d->d_in);
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_rep_merge(const lort_tt_rep_desc *desc, float *W,
                                       const float *params, float weight, void *work,
                                       size_t work_size) {
    return lort__tt_rep_dense(desc, W, params, weight, 1.0f, work, work_size);
}
LORT_DEF lort_status lort_tt_rep_delta(const lort_tt_rep_desc *desc, float *dW,
                                       const float *params, void *work, size_t work_size) {
    return lort__tt_rep_dense(desc, dW, params, 1.0f, 0.0f, work, work_size);
}

#endif /* LORT__HAS_TT_REP */

// >>tt_adp =============================================================================== impl
#if LORT__HAS_TT_ADP

LORT__PRIVATE float lort__act(int kind, float z) {
    switch (kind) {
    case LORT_ACT_TANH:
        return tanhf(z);
    case LORT_ACT_GELU:
        return 0.5f * z * (1.0f + erff(z * 0.70710678118654752f));
    case LORT_ACT_GELU_TANH:
        return 0.5f * z * (1.0f + tanhf(0.79788456080286536f * (z + 0.044715f * z * z * z)));
    default:
        return z > 0.0f ? z : 0.0f;
    }
}
LORT__PRIVATE float lort__act_grad(int kind, float z) {
    float t;
    switch (kind) {
    case LORT_ACT_TANH:
        t = tanhf(z);
        return 1.0f - t * t;
    case LORT_ACT_GELU: /* Phi(z) + z phi(z) */
        return 0.5f * (1.0f + erff(z * 0.70710678118654752f)) +
               z * 0.39894228040143268f * expf(-0.5f * z * z);
    case LORT_ACT_GELU_TANH:
        t = tanhf(0.79788456080286536f * (z + 0.044715f * z * z * z));
        return 0.5f * (1.0f + t) +
               0.5f * z * (1.0f - t * t) * 0.79788456080286536f * (1.0f + 0.134145f * z * z);
    default:
        return z > 0.0f ? 1.0f : 0.0f;
    }
}

LORT__PRIVATE lort_status lort__tt_adp_check(const lort_tt_adp_desc *d, lort__tt_plan *pd,
                                             lort__tt_plan *pu) {
    lort_tt_desc td, tu;
    lort_status st;
    size_t t;
    if (!d) return LORT_ERR_NULL;
    if (d->hidden <= 0 || d->bottleneck <= 0 || !lort__finite(d->scale) || d->act < 0 ||
        d->act > LORT_ACT_GELU_TANH || (d->placement != LORT_TT_ADP_OUTPUT &&
                                        d->placement != LORT_TT_ADP_INPUT) ||
        !(d->dropout >= 0.0f && d->dropout < 1.0f))
        return LORT_ERR_INVALID_ARG;
    if (!lort__mul3((size_t)d->hidden, (size_t)d->bottleneck, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    if ((st = lort__tt_embed(&d->down, d->hidden, d->bottleneck, &td))) return st;
    if (d->up.n_cores == 0) { /* the modes and ranks of down, reshaped the other way */
        tu = td;
        tu.rows = d->up.rows;
        tu.cols = d->up.cols;
    } else {
        tu = d->up;
    }
    if ((st = lort__tt_embed(&tu, d->bottleneck, d->hidden, &tu))) return st;
    if ((st = lort__tt_plan_make(&td, pd)) || (st = lort__tt_plan_make(&tu, pu))) return st;
    return LORT_OK;
}

/* The one layout of tt_adp: the work of both trains, then U = drop(u) (n, hidden) when there
   is dropout, Z (n, b) when not cached, A = act(Z) (n, b), dZ (n, b), and the masked dx temp
   (n, hidden) when there is dropout. cache: U (n, hidden), Z (n, b), W_down, W_up (so that
   backward need not materialise them again; empty for a train that takes the factored path at
   n rows), and the factored path's states of each train. */
enum { LORT__TA_SD, LORT__TA_SU, LORT__TA_U, LORT__TA_Z, LORT__TA_A, LORT__TA_DZ, LORT__TA_T };
enum { LORT__TAC_U, LORT__TAC_Z, LORT__TAC_WD, LORT__TAC_WU, LORT__TAC_XD, LORT__TAC_XU };
LORT__PRIVATE lort_status lort__tt_adp_plan(const lort_tt_adp_desc *d, int n, lort__tt_plan *pd,
                                            lort__tt_plan *pu, lort__layout *work,
                                            lort__layout *cache, lort__layout *sd,
                                            lort__layout *su) {
    lort_status st;
    size_t nh, nb;
    if ((st = lort__tt_adp_check(d, pd, pu))) return st;
    if ((st = lort__rows_check(n, d->hidden, d->bottleneck))) return st;
    nh = (size_t)n * (size_t)d->hidden;
    nb = (size_t)n * (size_t)d->bottleneck;
    lort__lay_init(work);
    lort__lay_init(cache);
    lort__tt_sublayout(pd, n, work, LORT__TA_SD, sd);
    lort__tt_sublayout(pu, n, work, LORT__TA_SU, su);
    lort__lay_put(work, LORT__TA_U, d->dropout > 0.0f ? nh : 0);
    lort__lay_put(work, LORT__TA_Z, nb);
    lort__lay_put(work, LORT__TA_A, nb);
    lort__lay_put(work, LORT__TA_DZ, nb);
    lort__lay_put(work, LORT__TA_T, d->dropout > 0.0f ? nh : 0);
    lort__lay_put(cache, LORT__TAC_U, nh);
    lort__lay_put(cache, LORT__TAC_Z, nb);
    lort__lay_put(cache, LORT__TAC_WD, lort__tt_fact(pd, n) ? 0 : pd->N);
    lort__lay_put(cache, LORT__TAC_WU, lort__tt_fact(pu, n) ? 0 : pu->N);
    lort__tt_cache_states(pd, n, cache, LORT__TAC_XD);
    lort__tt_cache_states(pu, n, cache, LORT__TAC_XU);
    return LORT_OK;
}

LORT_DEF lort_status lort_tt_adp_desc_resolve(const lort_tt_adp_desc *desc,
                                              lort_tt_adp_desc *out) {
    lort__tt_plan pd, pu;
    lort_status st;
    lort_tt_adp_desc o;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__tt_adp_check(desc, &pd, &pu))) return st;
    o = *desc;
    if (lort__is_zero(o.scale)) o.scale = 1.0f;
    (void)lort__tt_embed(&desc->down, desc->hidden, desc->bottleneck, &o.down);
    if (desc->up.n_cores == 0) {
        o.up = o.down;
        o.up.rows = desc->up.rows;
        o.up.cols = desc->up.cols;
    }
    (void)lort__tt_embed(&o.up, desc->bottleneck, desc->hidden, &o.up);
    if ((st = lort_tt_desc_resolve(&o.down, &o.down)) || (st = lort_tt_desc_resolve(&o.up, &o.up)))
        return st;
    *out = o;
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_adp_param_count(const lort_tt_adp_desc *desc, size_t *count) {
    lort__tt_plan pd, pu;
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__tt_adp_check(desc, &pd, &pu))) return st;
    *count = pd.coff[pd.d] + pu.coff[pu.d] + (size_t)desc->bottleneck + (size_t)desc->hidden;
    return LORT_OK;
}
LORT_DEF lort_status lort_tt_adp_cache_size(const lort_tt_adp_desc *desc, int n, size_t *bytes) {
    lort__tt_plan pd, pu;
    lort__layout w, c, sd, su;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_adp_plan(desc, n, &pd, &pu, &w, &c, &sd, &su))) return st;
    return lort__lay_bytes(&c, bytes);
}
LORT_DEF lort_status lort_tt_adp_workspace_size(const lort_tt_adp_desc *desc, int n,
                                                size_t *bytes) {
    lort__tt_plan pd, pu;
    lort__layout w, c, sd, su;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__tt_adp_plan(desc, n, &pd, &pu, &w, &c, &sd, &su))) return st;
    return lort__lay_bytes(&w, bytes);
}
LORT_DEF lort_status lort_tt_adp_init(const lort_tt_adp_desc *desc, float *params,
                                      lort_rng *rng) {
    lort__tt_plan pd, pu;
    lort_status st;
    float *bd, *bu, lim;
    int i;
    if ((st = lort__tt_adp_check(desc, &pd, &pu))) return st;
    if (!params || !rng) return LORT_ERR_NULL;
    lort__tt_init(&pd, params, rng);
    lort__tt_init(&pu, params + pd.coff[pd.d], rng);
    bd = params + pd.coff[pd.d] + pu.coff[pu.d];
    bu = bd + desc->bottleneck;
    lim = 1.0f / sqrtf((float)desc->bottleneck);
    for (i = 0; i < desc->bottleneck; ++i) bd[i] = lim * (2.0f * lort_rng_uniform(rng) - 1.0f);
    lim = 1.0f / sqrtf((float)desc->hidden);
    for (i = 0; i < desc->hidden; ++i) bu[i] = lim * (2.0f * lort_rng_uniform(rng) - 1.0f);
    return LORT_OK;
}

/* Shared state of an adp call: the materialised trains and the parameter views. */
typedef struct lort__tt_adp_run {
    float *base, *sbD, *sbU;
    const float *WD, *WU, *bd, *bu;
    int fd, fu; /* the train takes the factored path (its W is NULL) */
} lort__tt_adp_run;
/* cWD, cWU: the trains saved by forward, or NULL; a dense train is materialised when there is
   no saved copy, or when its gradient (grads != 0) needs the prefixes P_1.. (split > 1). */
LORT__PRIVATE void lort__tt_adp_start(const lort__tt_plan *pd, const lort__tt_plan *pu,
                                      const lort__layout *w, const lort__layout *sd,
                                      const lort__layout *su, const float *params, void *work,
                                      const float *cWD, const float *cWU, int grads, int n,
                                      lort__tt_adp_run *R) {
    R->base = lort__lay_base(work);
    R->sbD = lort__lay_slot(R->base, w, LORT__TA_SD);
    R->sbU = lort__lay_slot(R->base, w, LORT__TA_SU);
    R->WD = cWD;
    R->WU = cWU;
    R->fd = lort__tt_fact(pd, n);
    R->fu = lort__tt_fact(pu, n);
    if (R->fd) R->WD = NULL;
    else if (!cWD || (grads && pd->split > 1))
        R->WD = lort__tt_prefix(pd, params, lort__lay_slot(R->sbD, sd, LORT__TT_P),
                                lort__lay_slot(R->sbD, sd, LORT__TT_S));
    if (R->fu) R->WU = NULL;
    else if (!cWU || (grads && pu->split > 1))
        R->WU = lort__tt_prefix(pu, params + pd->coff[pd->d],
                                lort__lay_slot(R->sbU, su, LORT__TT_P),
                                lort__lay_slot(R->sbU, su, LORT__TT_S));
    R->bd = params + pd->coff[pd->d] + pu->coff[pu->d];
    R->bu = R->bd + pd->cols;
}
/* Z (n, b) = U W_down + beta_d; Act (n, b) = act(Z); XD: the states of a factored W_down */
LORT__PRIVATE void lort__tt_adp_pre(const lort_tt_adp_desc *d, const lort__tt_plan *pd,
                                    const lort__tt_adp_run *R, const float *params,
                                    const float *U, float *Z, float *Act, float *XD, int n) {
    size_t i, nb = (size_t)n * (size_t)d->bottleneck;
    for (i = 0; i < (size_t)n; ++i)
        memcpy(Z + i * (size_t)d->bottleneck, R->bd, (size_t)d->bottleneck * sizeof(float));
    if (R->fd) lort__tt_xfwd(pd, params, XD, U, n, Z, 1.0f, 1.0f);
    else lort__gemm(0, 0, n, pd->cols, pd->rows, 1.0f, U, pd->rows, R->WD, pd->cols, 1.0f, Z,
                    pd->cols);
    for (i = 0; i < nb; ++i) Act[i] = lort__act(d->act, Z[i]);
}

/* forward: U = drop(u); Z = U W_down + beta_d; y += s (act(Z) W_up + beta_u). u (possibly y
   itself) is read only by the first GEMM, before y is written. */
LORT_DEF lort_status lort_tt_adp_forward(const lort_tt_adp_desc *desc, float *y, const float *x,
                                         const float *params, int n, void *cache,
                                         size_t cache_size, void *work, size_t work_size) {
    lort__tt_plan pd, pu;
    lort__layout w, c, sd, su;
    lort__tt_adp_run R;
    lort_status st;
    const float *u, *U;
    float *Z, *Act, s;
    size_t nh;
    if ((st = lort__tt_adp_plan(desc, n, &pd, &pu, &w, &c, &sd, &su))) return st;
    u = desc->placement == LORT_TT_ADP_OUTPUT ? y : x;
    if (!y || !u || !params) return LORT_ERR_NULL;
    if (desc->placement == LORT_TT_ADP_OUTPUT && x && x != y) return LORT_ERR_INVALID_ARG;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    nh = (size_t)n * (size_t)desc->hidden;
    LORT__DEBUG_FINITE(u, nh);
    LORT__DEBUG_FINITE(params, pd.coff[pd.d] + pu.coff[pu.d] + (size_t)desc->bottleneck +
                                   (size_t)desc->hidden);
    lort__tt_adp_start(&pd, &pu, &w, &sd, &su, params, work, NULL, NULL, 0, n, &R);
    s = lort__is_zero(desc->scale) ? 1.0f : desc->scale;
    if (cache) { /* keep the materialised trains for backward */
        float *cb = lort__lay_base(cache);
        if (!R.fd) memcpy(lort__lay_slot(cb, &c, LORT__TAC_WD), R.WD, pd.N * sizeof(float));
        if (!R.fu) memcpy(lort__lay_slot(cb, &c, LORT__TAC_WU), R.WU, pu.N * sizeof(float));
    }
    U = u;
    if (cache || desc->dropout > 0.0f) { /* U = drop(u), in the cache or the workspace */
        float *Uc = cache ? lort__lay_slot(lort__lay_base(cache), &c, LORT__TAC_U)
                          : lort__lay_slot(R.base, &w, LORT__TA_U);
        if (desc->dropout > 0.0f)
            lort__dropout(desc->dropout_seed, desc->dropout, n, desc->hidden, Uc, u);
        else memcpy(Uc, u, nh * sizeof(float));
        U = Uc;
    }
    Z = cache ? lort__lay_slot(lort__lay_base(cache), &c, LORT__TAC_Z)
              : lort__lay_slot(R.base, &w, LORT__TA_Z);
    Act = lort__lay_slot(R.base, &w, LORT__TA_A);
    lort__tt_adp_pre(desc, &pd, &R, params, U, Z, Act,
                     cache ? lort__lay_slot(lort__lay_base(cache), &c, LORT__TAC_XD)
                           : lort__lay_slot(R.sbD, &sd, LORT__TT_X),
                     n);
    if (R.fu)
        lort__tt_xfwd(&pu, params + pd.coff[pd.d],
                      cache ? lort__lay_slot(lort__lay_base(cache), &c, LORT__TAC_XU)
                            : lort__lay_slot(R.sbU, &su, LORT__TT_X),
                      Act, n, y, s, 1.0f);
    lort__tt_apply(&pu, y, Act, R.WU, R.bu, n, s);
    return LORT_OK;
}

/* backward (G = dy): dbeta_u += s sum G; dW_up = s act(Z)^T G; dZ = s (G W_up^T) .* act'(Z);
   dbeta_d += sum dZ; dW_down = U^T dZ; dx += drop(dZ W_down^T). dx is written last, so it may
   alias dy. */
LORT_DEF lort_status lort_tt_adp_backward(const lort_tt_adp_desc *desc, float *dx,
                                          float *dparams, const float *dy, const float *x,
                                          const float *params, int n, const void *cache,
                                          size_t cache_size, void *work, size_t work_size) {
    lort__tt_plan pd, pu;
    lort__layout w, c, sd, su;
    lort__tt_adp_run R;
    lort_status st;
    const float *U, *Z, *GU;
    float *Act, *dZ, *XD, *XU, s;
    size_t i, nb;
    int h, b;
    if ((st = lort__tt_adp_plan(desc, n, &pd, &pu, &w, &c, &sd, &su))) return st;
    if (!dy || !params || (!cache && !x)) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    h = desc->hidden;
    b = desc->bottleneck;
    nb = (size_t)n * (size_t)b;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)h);
    LORT__DEBUG_FINITE(cache ? NULL : x, (size_t)n * (size_t)h);
    LORT__DEBUG_FINITE(params, pd.coff[pd.d] + pu.coff[pu.d] + (size_t)desc->bottleneck +
                                   (size_t)desc->hidden);
    if (!dx && !dparams) return LORT_OK;
    if (cache) {
        float *cb = lort__lay_base((void *)(uintptr_t)cache);
        lort__tt_adp_start(&pd, &pu, &w, &sd, &su, params, work,
                           lort__lay_slot(cb, &c, LORT__TAC_WD),
                           lort__lay_slot(cb, &c, LORT__TAC_WU), dparams != NULL, n, &R);
        XD = lort__lay_slot(cb, &c, LORT__TAC_XD);
        XU = lort__lay_slot(cb, &c, LORT__TAC_XU);
    } else {
        lort__tt_adp_start(&pd, &pu, &w, &sd, &su, params, work, NULL, NULL, 1, n, &R);
        XD = lort__lay_slot(R.sbD, &sd, LORT__TT_X);
        XU = lort__lay_slot(R.sbU, &su, LORT__TT_X);
    }
    GU = params + pd.coff[pd.d];
    s = lort__is_zero(desc->scale) ? 1.0f : desc->scale;
    Act = lort__lay_slot(R.base, &w, LORT__TA_A);
    dZ = lort__lay_slot(R.base, &w, LORT__TA_DZ);
    if (cache) {
        const float *cb = lort__lay_base((void *)(uintptr_t)cache);
        U = lort__lay_slot((float *)(uintptr_t)cb, &c, LORT__TAC_U);
        Z = lort__lay_slot((float *)(uintptr_t)cb, &c, LORT__TAC_Z);
        for (i = 0; i < nb; ++i) Act[i] = lort__act(desc->act, Z[i]);
    } else {
        float *Zw = lort__lay_slot(R.base, &w, LORT__TA_Z);
        U = x;
        if (desc->dropout > 0.0f) {
            float *Uw = lort__lay_slot(R.base, &w, LORT__TA_U);
            lort__dropout(desc->dropout_seed, desc->dropout, n, h, Uw, x);
            U = Uw;
        }
        lort__tt_adp_pre(desc, &pd, &R, params, U, Zw, Act, XD, n);
        if (R.fu && dparams) lort__tt_xfwd(&pu, GU, XU, Act, n, NULL, 1.0f, 0.0f);
        Z = Zw;
    }
    if (dparams) lort__colsum(dparams + pd.coff[pd.d] + pu.coff[pu.d] + b, dy, n, h, s);
    if (R.fu) { /* dZ = s G W_up^T and dW_up through the cores */
        lort__tt_xbwd(&pu, GU, XU, dy, s, n, dZ, 0.0f, dparams ? dparams + pd.coff[pd.d] : NULL,
                      lort__lay_slot(R.sbU, &su, LORT__TT_D0),
                      lort__lay_slot(R.sbU, &su, LORT__TT_D1));
    } else {
        if (dparams) {
            float *dWU = lort__lay_slot(R.sbU, &su, LORT__TT_DW);
            lort__gemm(1, 0, b, h, n, s, Act, b, dy, h, 0.0f, dWU, h);        /* s A^T G */
            lort__tt_grad_sub(&pu, dparams + pd.coff[pd.d], GU, R.sbU, &su);
        }
        lort__gemm(0, 1, n, b, h, s, dy, h, R.WU, h, 0.0f, dZ, b);            /* s G W_up^T */
    }
    for (i = 0; i < nb; ++i) dZ[i] *= lort__act_grad(desc->act, Z[i]);
    if (dparams) lort__colsum(dparams + pd.coff[pd.d] + pu.coff[pu.d], dZ, n, b, 1.0f);
    if (R.fd) { /* dx (+)= drop'(dZ W_down^T) and dW_down through the cores */
        int masked = dx && desc->dropout > 0.0f;
        float *T = lort__lay_slot(R.base, &w, LORT__TA_T);
        lort__tt_xbwd(&pd, params, XD, dZ, 1.0f, n, masked ? T : dx, masked ? 0.0f : 1.0f,
                      dparams, lort__lay_slot(R.sbD, &sd, LORT__TT_D0),
                      lort__lay_slot(R.sbD, &sd, LORT__TT_D1));
        if (masked) lort__dropout_add(desc->dropout_seed, desc->dropout, n, h, dx, T);
        return LORT_OK;
    }
    if (dparams) {
        float *dWD = lort__lay_slot(R.sbD, &sd, LORT__TT_DW);
        lort__gemm(1, 0, h, b, n, 1.0f, U, h, dZ, b, 0.0f, dWD, b);           /* U^T dZ */
        lort__tt_grad_sub(&pd, dparams, params, R.sbD, &sd);
    }
    if (!dx) return LORT_OK;
    if (desc->dropout > 0.0f) {
        float *T = lort__lay_slot(R.base, &w, LORT__TA_T);
        lort__gemm(0, 1, n, h, b, 1.0f, dZ, b, R.WD, b, 0.0f, T, h);
        lort__dropout_add(desc->dropout_seed, desc->dropout, n, h, dx, T);
    } else {
        lort__gemm(0, 1, n, h, b, 1.0f, dZ, b, R.WD, b, 1.0f, dx, h);        /* dx += dZ W_down^T */
    }
    return LORT_OK;
}

/* merge / delta of an adp: a valid desc still has no weight delta (f is not linear). */
LORT__PRIVATE lort_status lort__tt_adp_unmergeable(const lort_tt_adp_desc *d, const float *W) {
    lort__tt_plan pd, pu;
    lort_status st;
    if ((st = lort__tt_adp_check(d, &pd, &pu))) return st;
    if (!W) return LORT_ERR_NULL;
    return LORT_ERR_NOT_MERGEABLE;
}
#endif /* LORT__HAS_TT_ADP */

// >>joint ================================================================================ impl
#if LORT__HAS_JOINT

/* cp and tucker share one engine. Per site (layer l, matrix m) with nh heads (H, or kv_heads
   for a GQA type; q = H / nh query heads share each), pooled head factor rows
       Ch[g] = (1/q) sum_{t < q} C_H[g q + t]                       (nh, rH)
   and per-head cores K_g (r1, r2): cp K_g = diag(Ch[g] .* C_L[l] .* C_M[m]); tucker
   K_g = sum_{abc} C[:, :, a, b, c] Ch[g, a] C_L[l, b] C_M[m, c]. The head-split factor
       Bk = [K_0 B | K_1 B | ... | K_{nh-1} B]                      (r1, nh d_h)
   costs r1 d (cp) or r1 r2 d (tucker) and turns the site into a rank-r1 LoRA:
       heads out: y += s (Xd A) Bk      = lowrank with A_lora = A^T, B_lora = Bk^T
       heads in:  y += s (Xd Bk^T) A^T  = lowrank with A_lora = Bk,  B_lora = A
   so forward and backward run the lora pipeline (lort__lowrank_*), and backward reduces dBk
   to dB, dC_* (and dcore). With heads out and few rows the stacked-heads path below replaces
   Bk (lort__joint_stacked). merge/delta always go through Bk: W += w s Bk^T A^T (out) or
   w s A Bk (in), d^2 r1 (inherent to materialising). */
typedef struct lort__joint {
    int tucker, heads_in;
    int d, dh, H, L, M, kv;
    unsigned kvmask;
    int r1, r2, rh, rl, rm;
    float s, p;
    uint64_t seed;
    size_t oA, oB, oH, oL, oM, count; /* offsets in the flat vector (core at 0 for tucker) */
    /* site */
    int layer, matrix, nh, q, d_out;
    int u_ready; /* heads out: the cache already holds U = Xd A (lort_multi_forward) */
} lort__joint;

/* Workspace slots after the lowrank ones. */
enum { LORT__JT_BK = LORT__LR_M + 1, LORT__JT_DBK, LORT__JT_CH, LORT__JT_DCH, LORT__JT_Z1,
       LORT__JT_Z2, LORT__JT_K, LORT__JT_DK, LORT__JT_E, LORT__JT_DZ1 };

/* Heads on the output and few rows: the per-head form (MATH >>cp, >>tucker), heads stacked
   into the rows of one GEMM (P_g = U K_g, y_g = s P_g B, dy_g B^T, ...). It moves n (r2 + d_h)
   floats per head instead of the r1 d_h of Bk and dBk (tucker: and costs n H r1 r2 instead of
   r1 r2 d, hence also n < d_h). Its buffers live in the Bk and dBk slots, which it does not
   use: P_g and y_g (n nh (r2 + d_h) < r1 d floats) in Bk, dP_g (n nh r2) in dBk; so the
   workspace does not depend on the path. Tucker runs the head products as single GEMMs with
   Kcat = [K_0 | ... | K_{nh-1}] (r1, nh r2): P = U Kcat, dU = Gcat Kcat^T, dKcat = U^T Gcat,
   with (i, g) <-> (g, i) row permutations of the small (n, nh r2) results; Kcat lives in the
   dK slot until dK replaces it; Gcat in the second half of dBk (2 n r2 <= r1 d_h), Pcat in
   the first. */
/* dst[(g n + i) w + b] = src[i (G w) + g w + b], or the reverse with back != 0. */
LORT__PRIVATE void lort__permute_heads(float *dst, const float *src, int G, int n, int w,
                                       int back) {
    int g, i;
    for (g = 0; g < G; ++g)
        for (i = 0; i < n; ++i) {
            size_t st = ((size_t)g * (size_t)n + (size_t)i) * (size_t)w,
                   ct = (size_t)i * (size_t)G * (size_t)w + (size_t)g * (size_t)w;
            if (back) memcpy(dst + ct, src + st, (size_t)w * sizeof(float));
            else memcpy(dst + st, src + ct, (size_t)w * sizeof(float));
        }
}
LORT__PRIVATE int lort__joint_stacked(const lort__joint *J, int n) {
    size_t rd = (size_t)J->r1 * (size_t)J->dh;
    return !J->heads_in && (size_t)n * ((size_t)J->r2 + (size_t)J->dh) < rd &&
           (!J->tucker || (n < J->dh && 2u * (size_t)n * (size_t)J->r2 <= rd));
}

/* Validation common to cp and tucker; ranks r1.. already in J. */
LORT__PRIVATE lort_status lort__joint_check(lort__joint *J, int d, int heads, int layers,
                                            int matrices, float alpha, int rslora, float dropout,
                                            uint64_t seed, int head_side, int kv_heads,
                                            unsigned kv_matrices) {
    size_t t, c, core = 1;
    if (d <= 0 || heads <= 0 || layers <= 0 || matrices < 0 || kv_heads < 0 || J->r1 <= 0 ||
        J->r2 <= 0 || J->rh <= 0 || J->rl <= 0 || J->rm <= 0)
        return LORT_ERR_INVALID_ARG;
    if (!lort__finite(alpha) || !(dropout >= 0.0f && dropout < 1.0f) ||
        (head_side != LORT_CP_HEADS_OUT && head_side != LORT_CP_HEADS_IN))
        return LORT_ERR_INVALID_ARG;
    if (d % heads) return LORT_ERR_SHAPE;
    J->d = d;
    J->H = heads;
    J->dh = d / heads;
    J->L = layers;
    J->M = matrices ? matrices : 4;
    J->kv = kv_heads ? kv_heads : heads;
    if (J->kv > heads || heads % J->kv) return LORT_ERR_SHAPE;
    J->heads_in = head_side == LORT_CP_HEADS_IN;
    if (J->heads_in && J->kv != heads) return LORT_ERR_UNSUPPORTED;
    J->kvmask = kv_matrices ? kv_matrices : ((1u << LORT_CP_K) | (1u << LORT_CP_V));
    J->p = dropout;
    J->seed = seed;
    {
        float a = lort__is_zero(alpha) ? (float)J->r1 : alpha;
        J->s = rslora ? a / sqrtf((float)J->r1) : a / (float)J->r1;
    }
    /* offsets (checked); every GEMM dimension (d, r1 d, r1 r2, the core's products) fits int */
    if (J->tucker) {
        if (!lort__mul3((size_t)J->r1, (size_t)J->r2, (size_t)J->rh, &core) ||
            !lort__mul3(core, (size_t)J->rl, (size_t)J->rm, &core) || core > (size_t)INT_MAX)
            return LORT_ERR_OVERFLOW;
    } else {
        core = 0;
    }
    if (!lort__mul((size_t)d, (size_t)J->r1, &t) || t > (size_t)INT_MAX ||
        !lort__mul((size_t)J->r1, (size_t)J->r2, &t) || t > (size_t)INT_MAX ||
        !lort__mul3((size_t)J->r2, (size_t)d, (size_t)J->r1, &t) ||
        !lort__mul3((size_t)d, (size_t)d, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    c = core;
    J->oA = c;
    if (!lort__add_mul(&c, (size_t)d, (size_t)J->r1)) return LORT_ERR_OVERFLOW;
    J->oB = c;
    if (!lort__add_mul(&c, (size_t)J->r2, (size_t)J->dh)) return LORT_ERR_OVERFLOW;
    J->oH = c;
    if (!lort__add_mul(&c, (size_t)heads, (size_t)J->rh)) return LORT_ERR_OVERFLOW;
    J->oL = c;
    if (!lort__add_mul(&c, (size_t)layers, (size_t)J->rl)) return LORT_ERR_OVERFLOW;
    J->oM = c;
    if (!lort__add_mul(&c, (size_t)J->M, (size_t)J->rm) || !lort__mul(c, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    J->count = c;
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__cp_joint(const lort_cp_desc *dd, lort__joint *J) {
    if (!dd) return LORT_ERR_NULL;
    memset(J, 0, sizeof(*J));
    J->r1 = J->r2 = J->rh = J->rl = J->rm = dd->r;
    if (!lort__finite(dd->init_scale)) return LORT_ERR_INVALID_ARG;
    return lort__joint_check(J, dd->d, dd->heads, dd->layers, dd->matrices, dd->alpha,
                             dd->rslora, dd->dropout, dd->dropout_seed, dd->head_side,
                             dd->kv_heads, dd->kv_matrices);
}
LORT__PRIVATE lort_status lort__tucker_joint(const lort_tucker_desc *dd, lort__joint *J) {
    if (!dd) return LORT_ERR_NULL;
    memset(J, 0, sizeof(*J));
    J->tucker = 1;
    J->r1 = dd->r1;
    J->r2 = dd->r2;
    J->rh = dd->rh ? dd->rh : dd->r1;
    J->rl = dd->rl ? dd->rl : dd->r1;
    J->rm = dd->rm ? dd->rm : dd->r1;
    if (dd->rh < 0 || dd->rl < 0 || dd->rm < 0 || dd->init < LORT_TUCKER_INIT_DEFAULT ||
        dd->init > LORT_TUCKER_INIT_FACT_TK)
        return LORT_ERR_INVALID_ARG;
    return lort__joint_check(J, dd->d, dd->heads, dd->layers, dd->matrices, dd->alpha,
                             dd->rslora, dd->dropout, dd->dropout_seed, dd->head_side,
                             dd->kv_heads, dd->kv_matrices);
}

/* nn.Linear shape of matrix type m; LORT_ERR_INVALID_ARG when m is out of range. */
LORT__PRIVATE lort_status lort__joint_matrix(lort__joint *J, int matrix) {
    if (matrix < 0 || matrix >= J->M) return LORT_ERR_INVALID_ARG;
    J->matrix = matrix;
    J->nh = (matrix < 32 && ((J->kvmask >> matrix) & 1u)) ? J->kv : J->H;
    J->q = J->H / J->nh;
    J->d_out = J->heads_in ? J->d : J->nh * J->dh;
    return LORT_OK;
}
LORT__PRIVATE lort_status lort__joint_site(lort__joint *J, int layer, int matrix) {
    if (layer < 0 || layer >= J->L) return LORT_ERR_INVALID_ARG;
    J->layer = layer;
    return lort__joint_matrix(J, matrix);
}

/* Work and cache at n rows, for any site: the lowrank slots at (d, d, r1) plus the joint
   slots. Cache: (n, r1). */
LORT__PRIVATE lort_status lort__joint_layout(const lort__joint *J, int n, lort__layout *work,
                                             lort__layout *cache) {
    lort_status st;
    size_t r12 = (size_t)J->r1 * (size_t)J->r2, r3 = r12 * (size_t)J->rh,
           r4 = r3 * (size_t)J->rl, bk = (size_t)J->r1 * (size_t)J->d,
           ch = (size_t)J->H * (size_t)J->rh, hk = 0;
    if ((st = lort__rows_check(n, J->d, J->d))) return st;
    lort__lay_init(work);
    lort__lay_init(cache);
    lort__lowrank_layout(J->d, J->d, J->r1, J->p, n, 0, work, cache);
    if (J->tucker && !lort__mul((size_t)J->H, r12, &hk)) work->overflow = 1;
    lort__lay_put(work, LORT__JT_BK, bk);                   /* Bk (r1, nh d_h) */
    lort__lay_put(work, LORT__JT_DBK, bk);                   /* dBk */
    lort__lay_put(work, LORT__JT_CH, ch); /* Ch (nh, rH); cp: c_g = Ch .* C_L[l] .* C_M[m] */
    lort__lay_put(work, LORT__JT_DCH, ch);                   /* dCh */
    lort__lay_put(work, LORT__JT_Z1, J->tucker ? r4 : 0);   /* Z1 = C x_5 C_M[m]   (r1 r2 rH, rL) */
    lort__lay_put(work, LORT__JT_Z2, J->tucker ? r3 : 0);   /* Z2 = Z1 x_4 C_L[l]  (r1 r2, rH) */
    lort__lay_put(work, LORT__JT_K, hk);                   /* K (nh, r1 r2) */
    lort__lay_put(work, LORT__JT_DK, hk);                   /* dK */
    lort__lay_put(work, LORT__JT_E, J->tucker ? r3 : 0);   /* E = dZ2 */
    lort__lay_put(work, LORT__JT_DZ1, J->tucker ? r4 : 0);   /* dZ1 */
    return LORT_OK;
}
/* The size queries of cp and tucker: st is the status of building J from the desc. */
LORT__PRIVATE lort_status lort__joint_size(lort_status st, const lort__joint *J, int n, int cache,
                                           size_t *bytes) {
    lort__layout w, c;
    if (st || (st = lort__joint_layout(J, n, &w, &c))) return st;
    return lort__lay_bytes(cache ? &c : &w, bytes);
}

/* Ch (nh, rh) = group means of the rows of C_H. */
LORT__PRIVATE void lort__joint_pool(const lort__joint *J, const float *CH, float *Ch) {
    int g, t, k, rh = J->rh;
    float inv = 1.0f / (float)J->q;
    for (g = 0; g < J->nh; ++g) {
        float *o = Ch + (size_t)g * (size_t)rh;
        for (k = 0; k < rh; ++k) {
            float acc = 0.0f;
            for (t = 0; t < J->q; ++t) acc += CH[((size_t)g * (size_t)J->q + (size_t)t) * (size_t)rh + (size_t)k];
            o[k] = J->q == 1 ? acc : acc * inv;
        }
    }
}

/* cp: c_g = Ch[g] .* C_L[l] .* C_M[m] (nh, r). */
LORT__PRIVATE void lort__cp_coeffs(const lort__joint *J, const float *P, float *c) {
    const float *cl = P + J->oL + (size_t)J->layer * (size_t)J->rl,
                *cm = P + J->oM + (size_t)J->matrix * (size_t)J->rm;
    int g, k, r = J->r1;
    lort__joint_pool(J, P + J->oH, c);
    for (g = 0; g < J->nh; ++g)
        for (k = 0; k < r; ++k) c[(size_t)g * (size_t)r + (size_t)k] *= cl[k] * cm[k];
}
/* cp: dC_H, dC_L[l], dC_M[m] += the gradients through c_g, given dc (nh, r); Ch: scratch. */
LORT__PRIVATE void lort__cp_coeffs_backward(const lort__joint *J, float *dP, const float *P,
                                            const float *dc, float *Ch) {
    const float *cl = P + J->oL + (size_t)J->layer * (size_t)J->rl,
                *cm = P + J->oM + (size_t)J->matrix * (size_t)J->rm;
    float *dCH = dP + J->oH, *dcl = dP + J->oL + (size_t)J->layer * (size_t)J->rl,
          *dcm = dP + J->oM + (size_t)J->matrix * (size_t)J->rm;
    int g, k, t, r = J->r1;
    float invq = 1.0f / (float)J->q;
    lort__joint_pool(J, P + J->oH, Ch); /* the pooled C_H rows */
    for (g = 0; g < J->nh; ++g)
        for (k = 0; k < r; ++k) {
            size_t i = (size_t)g * (size_t)r + (size_t)k;
            float v = dc[i] * cl[k] * cm[k] * invq;
            dcl[k] += dc[i] * Ch[i] * cm[k];
            dcm[k] += dc[i] * Ch[i] * cl[k];
            for (t = 0; t < J->q; ++t) dCH[((size_t)g * (size_t)J->q + (size_t)t) * (size_t)r + (size_t)k] += v;
        }
}

/* The mode products of the tucker core with one factor row: a (M, K) matrix times a vector of
   K <= a few ranks, its transpose, and the outer product. Plain loops: a GEMM call (or
   sgemv) with a dimension of 1 and another of 4 runs several times slower than reading the
   core once. */
LORT__PRIVATE void lort__mv(float *y, const float *A, const float *x, int M, int K) {
    int i, k;
    for (i = 0; i < M; ++i) {
        const float *a = A + (size_t)i * (size_t)K;
        float acc = 0.0f;
        for (k = 0; k < K; ++k) acc += a[k] * x[k];
        y[i] = acc;
    }
}
/* y (K) += v (M)^T A (M, K) */
LORT__PRIVATE void lort__vm_add(float *y, const float *v, const float *A, int M, int K) {
    int i, k;
    for (i = 0; i < M; ++i) {
        const float *a = A + (size_t)i * (size_t)K;
        for (k = 0; k < K; ++k) y[k] += v[i] * a[k];
    }
}
/* C (M, K) = beta C + u v^T, beta 0 or 1 */
LORT__PRIVATE void lort__outer(float *C, const float *u, const float *v, int M, int K,
                               int add) {
    int i, k;
    for (i = 0; i < M; ++i) {
        float *c = C + (size_t)i * (size_t)K;
        if (add)
            for (k = 0; k < K; ++k) c[k] += u[i] * v[k];
        else
            for (k = 0; k < K; ++k) c[k] = u[i] * v[k];
    }
}

/* Bk (r1, nh d_h) of the site, from the flat params P. */
/* tucker: Z1 = C x_5 C_M[m], Z2 = Z1 x_4 C_L[l], Ch (pooled C_H) and K (nh, r1 r2), K_g =
   sum_a Z2[:, :, a] Ch[g, a], in their slots. */
LORT__PRIVATE void lort__tucker_cores(const lort__joint *J, const float *P, float *base,
                                      const lort__layout *W) {
    const float *cl = P + J->oL + (size_t)J->layer * (size_t)J->rl,
                *cm = P + J->oM + (size_t)J->matrix * (size_t)J->rm;
    float *Z1 = lort__lay_slot(base, W, LORT__JT_Z1), *Z2 = lort__lay_slot(base, W, LORT__JT_Z2);
    float *K = lort__lay_slot(base, W, LORT__JT_K), *Ch = lort__lay_slot(base, W, LORT__JT_CH);
    int g, r12 = J->r1 * J->r2, r3 = r12 * J->rh, r4 = r3 * J->rl;
    lort__joint_pool(J, P + J->oH, Ch);
    lort__mv(Z1, P, cm, r4, J->rm);                                            /* Z1 = C cm */
    lort__mv(Z2, Z1, cl, r3, J->rl);                                           /* Z2 = Z1 cl */
    for (g = 0; g < J->nh; ++g) /* K = Ch Z2^T, K_g = Z2 Ch[g] */
        lort__mv(K + (size_t)g * (size_t)r12, Z2, Ch + (size_t)g * (size_t)J->rh, r12, J->rh);
}
/* tucker: dP += the gradients that flow from dK (nh, r1 r2, in its slot) to the core, C_H,
   C_L[l] and C_M[m] (lort__tucker_cores must have run). */
LORT__PRIVATE void lort__tucker_cores_backward(const lort__joint *J, float *dP, const float *P,
                                               float *base, const lort__layout *W) {
    const float *cl = P + J->oL + (size_t)J->layer * (size_t)J->rl,
                *cm = P + J->oM + (size_t)J->matrix * (size_t)J->rm;
    const float *Z1 = lort__lay_slot(base, W, LORT__JT_Z1), *Z2 = lort__lay_slot(base, W, LORT__JT_Z2);
    const float *dK = lort__lay_slot(base, W, LORT__JT_DK), *Ch = lort__lay_slot(base, W, LORT__JT_CH);
    float *E = lort__lay_slot(base, W, LORT__JT_E), *dZ1 = lort__lay_slot(base, W, LORT__JT_DZ1);
    float *dCh = lort__lay_slot(base, W, LORT__JT_DCH), *dCH = dP + J->oH;
    float *dcl = dP + J->oL + (size_t)J->layer * (size_t)J->rl,
          *dcm = dP + J->oM + (size_t)J->matrix * (size_t)J->rm;
    int g, k, t, rh = J->rh, r12 = J->r1 * J->r2, r3 = r12 * J->rh, r4 = r3 * J->rl;
    float invq = 1.0f / (float)J->q;
    lort__gemm(0, 0, J->nh, rh, r12, 1.0f, dK, r12, Z2, rh, 0.0f, dCh, rh);   /* dCh = dK Z2 */
    lort__gemm(1, 0, r12, rh, J->nh, 1.0f, dK, r12, Ch, rh, 0.0f, E, rh);     /* dZ2 = dK^T Ch */
    lort__vm_add(dcl, E, Z1, r3, J->rl);                                      /* dcl += dZ2 Z1 */
    lort__outer(dZ1, E, cl, r3, J->rl, 0);                                    /* dZ1 = dZ2 cl^T */
    lort__vm_add(dcm, dZ1, P, r4, J->rm);                                     /* dcm += dZ1 C */
    lort__outer(dP, dZ1, cm, r4, J->rm, 1);                                   /* dC += dZ1 cm^T */
    for (g = 0; g < J->nh; ++g)
        for (k = 0; k < rh; ++k) {
            float v = dCh[(size_t)g * (size_t)rh + (size_t)k] * invq;
            for (t = 0; t < J->q; ++t) dCH[((size_t)g * (size_t)J->q + (size_t)t) * (size_t)rh + (size_t)k] += v;
        }
}

LORT__PRIVATE void lort__joint_bk(const lort__joint *J, const float *P, float *base,
                                  const lort__layout *W) {
    const float *B = P + J->oB;
    float *Bk = lort__lay_slot(base, W, LORT__JT_BK), *Ch = lort__lay_slot(base, W, LORT__JT_CH);
    int g, k, j, dh = J->dh, ds = J->nh * J->dh;
    if (!J->tucker) { /* c_g = Ch[g] .* C_L[l] .* C_M[m]; Bk[k, g dh + j] = c_g[k] B[k, j] */
        int r = J->r1;
        lort__cp_coeffs(J, P, Ch);
        for (k = 0; k < r; ++k) {
            const float *b = B + (size_t)k * (size_t)dh;
            for (g = 0; g < J->nh; ++g) {
                float c = Ch[(size_t)g * (size_t)r + (size_t)k];
                float *o = Bk + (size_t)k * (size_t)ds + (size_t)g * (size_t)dh;
                for (j = 0; j < dh; ++j) o[j] = c * b[j];
            }
        }
    } else {
        const float *K = lort__lay_slot(base, W, LORT__JT_K);
        int r12 = J->r1 * J->r2;
        lort__tucker_cores(J, P, base, W);
        for (g = 0; g < J->nh; ++g)                                           /* Bk_g = K_g B */
            lort__gemm(0, 0, J->r1, dh, J->r2, 1.0f, K + (size_t)g * (size_t)r12, J->r2, B, dh,
                       0.0f, Bk + (size_t)g * (size_t)dh, ds);
    }
}

/* dP (flat) += the gradients that flow from dBk through Bk (lort__joint_bk must have run). */
LORT__PRIVATE void lort__joint_bk_backward(const lort__joint *J, float *dP, const float *P,
                                           float *base, const lort__layout *W) {
    const float *B = P + J->oB;
    const float *dBk = lort__lay_slot(base, W, LORT__JT_DBK);
    float *Ch = lort__lay_slot(base, W, LORT__JT_CH), *dCh = lort__lay_slot(base, W, LORT__JT_DCH);
    float *dB = dP + J->oB;
    int g, k, j, dh = J->dh, ds = J->nh * J->dh;
    if (!J->tucker) {
        int r = J->r1;
        /* Ch holds c_g; dc_g[k] = sum_j B[k, j] dBk[k, g dh + j]; dB[k] += sum_g c_g[k] dBk_g[k] */
        for (k = 0; k < r; ++k) {
            const float *b = B + (size_t)k * (size_t)dh;
            float *db = dB + (size_t)k * (size_t)dh;
            for (g = 0; g < J->nh; ++g) {
                const float *e = dBk + (size_t)k * (size_t)ds + (size_t)g * (size_t)dh;
                float c = Ch[(size_t)g * (size_t)r + (size_t)k];
                dCh[(size_t)g * (size_t)r + (size_t)k] = lort__dot(b, e, (size_t)dh);
                for (j = 0; j < dh; ++j) db[j] += c * e[j];
            }
        }
        lort__cp_coeffs_backward(J, dP, P, dCh, Ch);
    } else {
        const float *K = lort__lay_slot(base, W, LORT__JT_K);
        float *dK = lort__lay_slot(base, W, LORT__JT_DK);
        int r12 = J->r1 * J->r2;
        for (g = 0; g < J->nh; ++g) {
            const float *e = dBk + (size_t)g * (size_t)dh;
            lort__gemm(1, 0, J->r2, dh, J->r1, 1.0f, K + (size_t)g * (size_t)r12, J->r2, e, ds,
                       1.0f, dB, dh);                                        /* dB += K_g^T dBk_g */
            lort__gemm(0, 1, J->r1, J->r2, dh, 1.0f, e, ds, B, dh, 0.0f,
                       dK + (size_t)g * (size_t)r12, J->r2);                 /* dK_g = dBk_g B^T */
        }
        lort__tucker_cores_backward(J, dP, P, base, W);
    }
}

/* P_g = U K_g for every head, stacked (nh n, r2): cp K_g = diag(c_g), tucker the core slices. */
LORT__PRIVATE void lort__joint_heads_stacked(const lort__joint *J, const float *U, int n,
                                             float *Ps, float *base, const lort__layout *W) {
    int g, i, k, r = J->r1, r2 = J->r2, r12 = J->r1 * J->r2;
    if (!J->tucker) {
        const float *c = lort__lay_slot(base, W, LORT__JT_CH);
        for (g = 0; g < J->nh; ++g)
            for (i = 0; i < n; ++i) {
                const float *u = U + (size_t)i * (size_t)r, *cg = c + (size_t)g * (size_t)r;
                float *o = Ps + ((size_t)g * (size_t)n + (size_t)i) * (size_t)r;
                for (k = 0; k < r; ++k) o[k] = u[k] * cg[k];
            }
    } else { /* Pcat = U Kcat (n, nh r2) in the first half of dBk (the stacked dP_g, which
                tucker's backward has turned into Gcat by then), then stacked into Ps */
        const float *Kc = lort__lay_slot(base, W, LORT__JT_DK);
        float *Pc = lort__lay_slot(base, W, LORT__JT_DBK);
        (void)r12;
        lort__gemm(0, 0, n, J->nh * r2, r, 1.0f, U, r, Kc, J->nh * r2, 0.0f, Pc, J->nh * r2);
        lort__permute_heads(Ps, Pc, J->nh, n, r2, 0);
    }
}
/* tucker: Kcat (r1, nh r2) into the dK slot from K (nh, r1 r2) */
LORT__PRIVATE void lort__tucker_kcat(const lort__joint *J, float *base, const lort__layout *W) {
    const float *K = lort__lay_slot(base, W, LORT__JT_K);
    float *Kc = lort__lay_slot(base, W, LORT__JT_DK);
    int g, a, r2 = J->r2, w = J->nh * J->r2;
    for (g = 0; g < J->nh; ++g)
        for (a = 0; a < J->r1; ++a)
            memcpy(Kc + (size_t)a * (size_t)w + (size_t)g * (size_t)r2,
                   K + ((size_t)g * (size_t)J->r1 + (size_t)a) * (size_t)r2, (size_t)r2 * sizeof(float));
}

/* Heads out, stacked heads. U = Xd A (n, r1) -> H (cache or work); P_g = U K_g;
   y_g = s P_g B (one GEMM over the nh n stacked rows); y[:, g d_h ..] += y_g. */
LORT__PRIVATE void lort__joint_forward_stacked(const lort__joint *J, float *y, const float *x,
                                               const float *P, int n, float *U, float *base,
                                               const lort__layout *W) {
    const float *xin = x;
    float *Ps = lort__lay_slot(base, W, LORT__JT_BK);
    float *Ys = Ps + (size_t)J->nh * (size_t)n * (size_t)J->r2;
    int g, i, r = J->r1, r2 = J->r2, dh = J->dh, d = J->d, ds = J->nh * J->dh;
    if (J->p > 0.0f && !J->u_ready) {
        float *xd = lort__lay_slot(base, W, LORT__LR_XD);
        lort__dropout(J->seed, J->p, n, d, xd, x);
        xin = xd;
    }
    if (!J->u_ready) /* U = Xd A (lort_multi_forward may have it already) */
        lort__gemm(0, 0, n, r, d, 1.0f, xin, d, P + J->oA, r, 0.0f, U, r);
    if (J->tucker) {
        lort__tucker_cores(J, P, base, W);
        lort__tucker_kcat(J, base, W);
    } else {
        lort__cp_coeffs(J, P, lort__lay_slot(base, W, LORT__JT_CH));
    }
    lort__joint_heads_stacked(J, U, n, Ps, base, W);
    lort__gemm(0, 0, J->nh * n, dh, r2, J->s, Ps, r2, P + J->oB, dh, 0.0f, Ys, dh); /* s P_g B */
    for (g = 0; g < J->nh; ++g)
        for (i = 0; i < n; ++i)
            lort__axpy(y + (size_t)i * (size_t)ds + (size_t)g * (size_t)dh, 1.0f,
                       Ys + ((size_t)g * (size_t)n + (size_t)i) * (size_t)dh, (size_t)dh);
}

/* Backward of the stacked form: dy_g stacked; dP_g = s dy_g B^T; dB += s sum_g P_g^T dy_g;
   cp: dc_g = sum_rows dP_g .* U, dU = sum_g dP_g .* c_g; tucker: dK_g = U^T dP_g,
   dU = sum_g dP_g K_g^T; then dA += Xd^T dU; dx += drop(dU A^T). */
LORT__PRIVATE void lort__joint_backward_stacked(const lort__joint *J, float *dx, float *dP,
                                                const float *dy, const float *x, const float *P,
                                                int n, const float *Uc, float *base,
                                                const lort__layout *W) {
    const float *xin = x, *U = Uc, *A = P + J->oA;
    float *c = lort__lay_slot(base, W, LORT__JT_CH), *dc = lort__lay_slot(base, W, LORT__JT_DCH);
    float *Ps = lort__lay_slot(base, W, LORT__JT_BK), *dU = lort__lay_slot(base, W, LORT__LR_G);
    float *Ds = Ps + (size_t)J->nh * (size_t)n * (size_t)J->r2;
    float *Gs = lort__lay_slot(base, W, LORT__JT_DBK);
    int g, i, k, r = J->r1, r2 = J->r2, r12 = J->r1 * J->r2, dh = J->dh, d = J->d;
    int ds = J->nh * J->dh, nn = J->nh * n;
    if (J->p > 0.0f && (dP || !Uc)) {
        float *xd = lort__lay_slot(base, W, LORT__LR_XD);
        lort__dropout(J->seed, J->p, n, d, xd, x);
        xin = xd;
    }
    if (!U) {
        float *Uw = lort__lay_slot(base, W, LORT__LR_H);
        lort__gemm(0, 0, n, r, d, 1.0f, xin, d, A, r, 0.0f, Uw, r);           /* U = Xd A */
        U = Uw;
    }
    if (J->tucker) {
        lort__tucker_cores(J, P, base, W);
        lort__tucker_kcat(J, base, W);
    } else {
        lort__cp_coeffs(J, P, c);
    }
    for (g = 0; g < J->nh; ++g) /* dy_g stacked */
        for (i = 0; i < n; ++i)
            memcpy(Ds + ((size_t)g * (size_t)n + (size_t)i) * (size_t)dh,
                   dy + (size_t)i * (size_t)ds + (size_t)g * (size_t)dh, (size_t)dh * sizeof(float));
    lort__gemm(0, 1, nn, r2, dh, J->s, Ds, dh, P + J->oB, dh, 0.0f, Gs, r2); /* dP_g = s dy_g B^T */
    if (J->tucker) { /* Gcat (n, nh r2); dU = Gcat Kcat^T before dK overwrites Kcat */
        float *Gc = Gs + (size_t)nn * (size_t)r2;
        lort__permute_heads(Gc, Gs, J->nh, n, r2, 1);
        if (dP || dx)
            lort__gemm(0, 1, n, r, J->nh * r2, 1.0f, Gc, J->nh * r2,
                       lort__lay_slot(base, W, LORT__JT_DK), J->nh * r2, 0.0f, dU, r);
    }
    if (dP) {
        lort__joint_heads_stacked(J, U, n, Ps, base, W);
        lort__gemm(1, 0, r2, dh, nn, J->s, Ps, r2, Ds, dh, 1.0f, dP + J->oB, dh); /* dB */
        if (!J->tucker) {
            memset(dc, 0, (size_t)J->nh * (size_t)r * sizeof(float));
            for (g = 0; g < J->nh; ++g)
                for (i = 0; i < n; ++i) {
                    const float *gg = Gs + ((size_t)g * (size_t)n + (size_t)i) * (size_t)r;
                    const float *u = U + (size_t)i * (size_t)r;
                    float *o = dc + (size_t)g * (size_t)r;
                    for (k = 0; k < r; ++k) o[k] += gg[k] * u[k];
                }
        } else { /* dKcat = U^T Gcat (r1, nh r2) in the K slot, then dK (nh, r1 r2) */
            float *dKc = lort__lay_slot(base, W, LORT__JT_K), *dK = lort__lay_slot(base, W, LORT__JT_DK);
            int a, w = J->nh * r2;
            lort__gemm(1, 0, r, w, n, 1.0f, U, r, Gs + (size_t)nn * (size_t)r2, w, 0.0f, dKc, w);
            for (g = 0; g < J->nh; ++g)
                for (a = 0; a < r; ++a)
                    memcpy(dK + (size_t)g * (size_t)r12 + (size_t)a * (size_t)r2,
                           dKc + (size_t)a * (size_t)w + (size_t)g * (size_t)r2, (size_t)r2 * sizeof(float));
        }
    }
    if ((dP || dx) && !J->tucker) { /* dU = sum_g dP_g .* c_g */
        {
            memset(dU, 0, (size_t)n * (size_t)r * sizeof(float));
            for (g = 0; g < J->nh; ++g)
                for (i = 0; i < n; ++i) {
                    const float *gg = Gs + ((size_t)g * (size_t)n + (size_t)i) * (size_t)r;
                    const float *cg = c + (size_t)g * (size_t)r;
                    float *o = dU + (size_t)i * (size_t)r;
                    for (k = 0; k < r; ++k) o[k] += gg[k] * cg[k];
                }
        }
    }
    if (dP) {
        lort__gemm(1, 0, d, r, n, 1.0f, xin, d, dU, r, 1.0f, dP + J->oA, r);   /* dA += Xd^T dU */
        if (J->tucker) lort__tucker_cores_backward(J, dP, P, base, W);
        else lort__cp_coeffs_backward(J, dP, P, dc, c);
    }
    if (!dx) return;
    if (J->p > 0.0f) {
        float *t = lort__lay_slot(base, W, LORT__LR_XD);
        lort__gemm(0, 1, n, d, r, 1.0f, dU, r, A, r, 0.0f, t, d);             /* T = dU A^T */
        lort__dropout_add(J->seed, J->p, n, d, dx, t);
    } else {
        lort__gemm(0, 1, n, d, r, 1.0f, dU, r, A, r, 1.0f, dx, d);            /* dx += dU A^T */
    }
}

LORT__PRIVATE lort_status lort__joint_forward(lort__joint *J, float *y, const float *x,
                                              const float *P, int layer, int matrix, int n,
                                              void *cache, size_t cache_size, void *work,
                                              size_t work_size) {
    lort__layout w, c;
    lort__lowrank LR;
    lort_status st;
    float *base, *H, *Bk;
    if ((st = lort__joint_site(J, layer, matrix))) return st;
    if ((st = lort__joint_layout(J, n, &w, &c))) return st;
    if (!y || !x || !P) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)J->d);
    LORT__DEBUG_FINITE(P, J->count);
    base = lort__lay_base(work);
    H = cache ? lort__lay_base(cache) : lort__lay_slot(base, &w, LORT__LR_H);
    if (lort__joint_stacked(J, n)) {
        lort__joint_forward_stacked(J, y, x, P, n, H, base, &w);
        return LORT_OK;
    }
    lort__joint_bk(J, P, base, &w);
    Bk = lort__lay_slot(base, &w, LORT__JT_BK);
    if (J->u_ready && !J->heads_in) { /* y += s U Bk, U already in H (lort_multi_forward) */
        lort__gemm(0, 0, n, J->d_out, J->r1, J->s, H, J->r1, Bk, J->d_out, 1.0f, y, J->d_out);
        return LORT_OK;
    }
    lort__lowrank_init(&LR, J->d, J->heads_in ? J->d : J->d_out, J->r1, J->s, J->p, J->seed,
                       base, &w);
    LR.A = J->heads_in ? Bk : P + J->oA;   /* heads in: Bk (r1, d) plays A */
    LR.B = J->heads_in ? P + J->oA : Bk;   /* heads out: A (d, r1) is A^T, Bk (r1, d) is B^T */
    LR.at = LR.bt = !J->heads_in;
    lort__lowrank_forward(&LR, y, x, n, H);
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__joint_backward(lort__joint *J, float *dx, float *dP,
                                               const float *dy, const float *x, const float *P,
                                               int layer, int matrix, int n, const void *cache,
                                               size_t cache_size, void *work,
                                               size_t work_size) {
    lort__layout w, c;
    lort__lowrank LR;
    lort_status st;
    float *base, *Bk, *dBk = NULL, *dA = NULL;
    const float *Hc;
    if ((st = lort__joint_site(J, layer, matrix))) return st;
    if ((st = lort__joint_layout(J, n, &w, &c))) return st;
    if (!dy || !x || !P) return LORT_ERR_NULL;
    if ((st = lort__bufs_check(&w, &c, cache, cache_size, work, work_size))) return st;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)J->d_out);
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)J->d);
    LORT__DEBUG_FINITE(P, J->count);
    base = lort__lay_base(work);
    Hc = cache ? lort__lay_base((void *)(uintptr_t)cache) : NULL;
    if (lort__joint_stacked(J, n)) {
        lort__joint_backward_stacked(J, dx, dP, dy, x, P, n, Hc, base, &w);
        return LORT_OK;
    }
    lort__joint_bk(J, P, base, &w);
    Bk = lort__lay_slot(base, &w, LORT__JT_BK);
    if (dP) {
        dBk = lort__lay_slot(base, &w, LORT__JT_DBK);
        memset(dBk, 0, (size_t)J->r1 * (size_t)J->nh * (size_t)J->dh * sizeof(float));
        dA = dP + J->oA;
    }
    lort__lowrank_init(&LR, J->d, J->heads_in ? J->d : J->d_out, J->r1, J->s, J->p, J->seed,
                       base, &w);
    LR.A = J->heads_in ? Bk : P + J->oA;
    LR.B = J->heads_in ? P + J->oA : Bk;
    LR.at = LR.bt = !J->heads_in;
    if (J->heads_in) lort__lowrank_backward(&LR, dx, dBk, dA, NULL, dy, x, n, Hc);
    else lort__lowrank_backward(&LR, dx, dA, dBk, NULL, dy, x, n, Hc);
    if (dP) lort__joint_bk_backward(J, dP, P, base, &w);
    return LORT_OK;
}

/* W (d_out, d) = beta W + weight s D^T (heads out) or weight s D (heads in). */
LORT__PRIVATE lort_status lort__joint_dense(lort__joint *J, float *W, const float *P, int layer,
                                            int matrix, float weight, float beta, void *work,
                                            size_t work_size) {
    lort__layout w, c;
    lort_status st;
    float *base, *Bk;
    if ((st = lort__joint_site(J, layer, matrix))) return st;
    if ((st = lort__joint_layout(J, 1, &w, &c))) return st;
    if (!W || !P) return LORT_ERR_NULL;
    if (!lort__finite(weight)) return LORT_ERR_INVALID_ARG;
    if ((st = lort__lay_check(&w, work, work_size, LORT_ERR_WORKSPACE))) return st;
    base = lort__lay_base(work);
    lort__joint_bk(J, P, base, &w);
    Bk = lort__lay_slot(base, &w, LORT__JT_BK);
    if (J->heads_in) /* W (d, d) = beta W + w s A Bk */
        lort__gemm(0, 0, J->d, J->d, J->r1, weight * J->s, P + J->oA, J->r1, Bk, J->d, beta, W,
                   J->d);
    else /* W (d_out, d) = beta W + w s Bk^T A^T */
        lort__gemm(1, 1, J->d_out, J->d, J->r1, weight * J->s, Bk, J->d_out, P + J->oA, J->r1,
                   beta, W, J->d);
    return LORT_OK;
}

LORT__PRIVATE void lort__uniform_fill(float *x, size_t count, float bound, lort_rng *rng) {
    size_t i;
    for (i = 0; i < count; ++i) x[i] = bound * (2.0f * lort_rng_uniform(rng) - 1.0f);
}

#endif /* LORT__HAS_JOINT */

// >>cp =================================================================================== impl
#if LORT__HAS_CP

LORT_DEF lort_status lort_cp_desc_resolve(const lort_cp_desc *desc, lort_cp_desc *out) {
    lort__joint J;
    lort_status st;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__cp_joint(desc, &J))) return st;
    *out = *desc;
    if (lort__is_zero(out->alpha)) out->alpha = (float)out->r;
    out->matrices = J.M;
    out->kv_heads = J.kv;
    out->kv_matrices = J.kvmask;
    return LORT_OK;
}
LORT_DEF lort_status lort_cp_scale(const lort_cp_desc *desc, float *scale) {
    lort__joint J;
    lort_status st;
    if (!scale) return LORT_ERR_NULL;
    if ((st = lort__cp_joint(desc, &J))) return st;
    *scale = J.s;
    return LORT_OK;
}
LORT_DEF lort_status lort_cp_param_count(const lort_cp_desc *desc, size_t *count) {
    lort__joint J;
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__cp_joint(desc, &J))) return st;
    *count = J.count;
    return LORT_OK;
}
LORT_DEF lort_status lort_cp_site_dims(const lort_cp_desc *desc, int matrix, int *d_in,
                                       int *d_out) {
    lort__joint J;
    lort_status st;
    if (!d_in || !d_out) return LORT_ERR_NULL;
    if ((st = lort__cp_joint(desc, &J)) || (st = lort__joint_matrix(&J, matrix))) return st;
    *d_in = J.d;
    *d_out = J.d_out;
    return LORT_OK;
}
LORT_DEF lort_status lort_cp_cache_size(const lort_cp_desc *desc, int n, size_t *bytes) {
    lort__joint J;
    if (!bytes) return LORT_ERR_NULL;
    return lort__joint_size(lort__cp_joint(desc, &J), &J, n, 1, bytes);
}
LORT_DEF lort_status lort_cp_workspace_size(const lort_cp_desc *desc, int n, size_t *bytes) {
    lort__joint J;
    if (!bytes) return LORT_ERR_NULL;
    return lort__joint_size(lort__cp_joint(desc, &J), &J, n, 0, bytes);
}

LORT_DEF lort_status lort_cp_init(const lort_cp_desc *desc, float *params, lort_rng *rng) {
    lort__joint J;
    lort_status st;
    float a, gain2;
    if ((st = lort__cp_joint(desc, &J))) return st;
    if (!params || !rng) return LORT_ERR_NULL;
    /* kaiming_uniform(a) on fan_in = r: bound = sqrt(6 / ((1 + a^2) r)), a = sqrt(5) init_scale */
    a = desc->init_scale;
    gain2 = 1.0f + 5.0f * a * a;
    lort__uniform_fill(params + J.oA, (size_t)J.d * (size_t)J.r1, 1.0f / sqrtf((float)J.r1), rng);
    memset(params + J.oB, 0, (size_t)J.r1 * (size_t)J.dh * sizeof(float));
    lort__uniform_fill(params + J.oH, J.count - J.oH, sqrtf(6.0f / (gain2 * (float)J.r1)), rng);
    return LORT_OK;
}

LORT_DEF lort_status lort_cp_forward(const lort_cp_desc *desc, float *y, const float *x,
                                     const float *params, int layer, int matrix, int n,
                                     void *cache, size_t cache_size, void *work,
                                     size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__cp_joint(desc, &J))) return st;
    return lort__joint_forward(&J, y, x, params, layer, matrix, n, cache, cache_size, work,
                               work_size);
}
LORT_DEF lort_status lort_cp_backward(const lort_cp_desc *desc, float *dx, float *dparams,
                                      const float *dy, const float *x, const float *params,
                                      int layer, int matrix, int n, const void *cache,
                                      size_t cache_size, void *work, size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__cp_joint(desc, &J))) return st;
    return lort__joint_backward(&J, dx, dparams, dy, x, params, layer, matrix, n, cache,
                                cache_size, work, work_size);
}
LORT_DEF lort_status lort_cp_merge(const lort_cp_desc *desc, float *W, const float *params,
                                   int layer, int matrix, float weight, void *work,
                                   size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__cp_joint(desc, &J))) return st;
    return lort__joint_dense(&J, W, params, layer, matrix, weight, 1.0f, work, work_size);
}
LORT_DEF lort_status lort_cp_delta(const lort_cp_desc *desc, float *dW, const float *params,
                                   int layer, int matrix, void *work, size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__cp_joint(desc, &J))) return st;
    return lort__joint_dense(&J, dW, params, layer, matrix, 1.0f, 0.0f, work, work_size);
}

#endif /* LORT__HAS_CP */

// >>tucker =============================================================================== impl
#if LORT__HAS_TUCKER

LORT_DEF lort_status lort_tucker_desc_resolve(const lort_tucker_desc *desc,
                                              lort_tucker_desc *out) {
    lort__joint J;
    lort_status st;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    *out = *desc;
    if (lort__is_zero(out->alpha)) out->alpha = (float)out->r1;
    out->matrices = J.M;
    out->rh = J.rh;
    out->rl = J.rl;
    out->rm = J.rm;
    out->kv_heads = J.kv;
    out->kv_matrices = J.kvmask;
    return LORT_OK;
}
LORT_DEF lort_status lort_tucker_scale(const lort_tucker_desc *desc, float *scale) {
    lort__joint J;
    lort_status st;
    if (!scale) return LORT_ERR_NULL;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    *scale = J.s;
    return LORT_OK;
}
LORT_DEF lort_status lort_tucker_param_count(const lort_tucker_desc *desc, size_t *count) {
    lort__joint J;
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    *count = J.count;
    return LORT_OK;
}
LORT_DEF lort_status lort_tucker_site_dims(const lort_tucker_desc *desc, int matrix, int *d_in,
                                           int *d_out) {
    lort__joint J;
    lort_status st;
    if (!d_in || !d_out) return LORT_ERR_NULL;
    if ((st = lort__tucker_joint(desc, &J)) || (st = lort__joint_matrix(&J, matrix))) return st;
    *d_in = J.d;
    *d_out = J.d_out;
    return LORT_OK;
}
LORT_DEF lort_status lort_tucker_cache_size(const lort_tucker_desc *desc, int n, size_t *bytes) {
    lort__joint J;
    if (!bytes) return LORT_ERR_NULL;
    return lort__joint_size(lort__tucker_joint(desc, &J), &J, n, 1, bytes);
}
LORT_DEF lort_status lort_tucker_workspace_size(const lort_tucker_desc *desc, int n,
                                                size_t *bytes) {
    lort__joint J;
    if (!bytes) return LORT_ERR_NULL;
    return lort__joint_size(lort__tucker_joint(desc, &J), &J, n, 0, bytes);
}

LORT_DEF lort_status lort_tucker_init(const lort_tucker_desc *desc, float *params,
                                      lort_rng *rng) {
    lort__joint J;
    lort_status st;
    size_t i, nA, nB, nc;
    int k, kmax;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    if (!params || !rng) return LORT_ERR_NULL;
    if (desc->init == LORT_TUCKER_INIT_LOTR && (J.rh != 1 || J.rm != 1 || J.rl != J.L))
        return LORT_ERR_SHAPE;
    if (desc->init == LORT_TUCKER_INIT_FACT_TK && (J.rh != 1 || J.rl != 1)) return LORT_ERR_SHAPE;
    nc = J.oA;
    nA = (size_t)J.d * (size_t)J.r1;
    nB = (size_t)J.r2 * (size_t)J.dh;
    memset(params, 0, J.count * sizeof(float));
    switch (desc->init) {
    case LORT_TUCKER_INIT_LOTR: /* U, V ~ N(0, 1); G_l = 0; C_L = I; C_H = C_M = 1 */
        for (i = 0; i < nA; ++i) params[J.oA + i] = lort_rng_normal(rng);
        for (i = 0; i < nB; ++i) params[J.oB + i] = lort_rng_normal(rng);
        for (i = 0; i < (size_t)J.H; ++i) params[J.oH + i] = 1.0f;
        for (k = 0; k < J.L; ++k) params[J.oL + (size_t)k * (size_t)J.L + (size_t)k] = 1.0f;
        for (i = 0; i < (size_t)J.M; ++i) params[J.oM + i] = 1.0f;
        break;
    case LORT_TUCKER_INIT_FACT_TK: /* nn.Linear FacTu, zero FacTv, Xavier core and P */
        lort__uniform_fill(params + J.oA, nA, 1.0f / sqrtf((float)J.d), rng);
        lort__uniform_fill(params, nc, sqrtf(6.0f / ((float)(J.r1 + J.r2) * (float)J.rm)), rng);
        lort__uniform_fill(params + J.oM, (size_t)J.M * (size_t)J.rm,
                           sqrtf(6.0f / (float)(J.M + J.rm)), rng);
        for (i = 0; i < (size_t)J.H; ++i) params[J.oH + i] = 1.0f;
        for (i = 0; i < (size_t)J.L; ++i) params[J.oL + i] = 1.0f;
        break;
    default: /* as cp (init_scale 0), core = ones on the wrapped diagonal */
        lort__uniform_fill(params + J.oA, nA, 1.0f / sqrtf((float)J.r1), rng);
        lort__uniform_fill(params + J.oH, (size_t)J.H * (size_t)J.rh, sqrtf(6.0f / (float)J.rh), rng);
        lort__uniform_fill(params + J.oL, (size_t)J.L * (size_t)J.rl, sqrtf(6.0f / (float)J.rl), rng);
        lort__uniform_fill(params + J.oM, (size_t)J.M * (size_t)J.rm, sqrtf(6.0f / (float)J.rm), rng);
        /* ones on the wrapped diagonal (k mod r1, k mod r2, k mod rH, k mod rL, k mod rM),
           k < the largest rank: distinct entries, the superdiagonal when the ranks are equal,
           and every slice of the core along every mode holds a one, so that no row of B (nor
           any factor column) starts with a gradient that is zero forever */
        kmax = J.r1 > J.r2 ? J.r1 : J.r2;
        kmax = kmax > J.rh ? kmax : J.rh;
        kmax = kmax > J.rl ? kmax : J.rl;
        kmax = kmax > J.rm ? kmax : J.rm;
        for (k = 0; k < kmax; ++k)
            params[(((((size_t)(k % J.r1) * (size_t)J.r2 + (size_t)(k % J.r2)) * (size_t)J.rh +
                      (size_t)(k % J.rh)) * (size_t)J.rl + (size_t)(k % J.rl)) * (size_t)J.rm) +
                   (size_t)(k % J.rm)] = 1.0f;
        break;
    }
    return LORT_OK;
}

LORT_DEF lort_status lort_tucker_forward(const lort_tucker_desc *desc, float *y, const float *x,
                                         const float *params, int layer, int matrix, int n,
                                         void *cache, size_t cache_size, void *work,
                                         size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    return lort__joint_forward(&J, y, x, params, layer, matrix, n, cache, cache_size, work,
                               work_size);
}
LORT_DEF lort_status lort_tucker_backward(const lort_tucker_desc *desc, float *dx,
                                          float *dparams, const float *dy, const float *x,
                                          const float *params, int layer, int matrix, int n,
                                          const void *cache, size_t cache_size, void *work,
                                          size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    return lort__joint_backward(&J, dx, dparams, dy, x, params, layer, matrix, n, cache,
                                cache_size, work, work_size);
}
LORT_DEF lort_status lort_tucker_merge(const lort_tucker_desc *desc, float *W,
                                       const float *params, int layer, int matrix, float weight,
                                       void *work, size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    return lort__joint_dense(&J, W, params, layer, matrix, weight, 1.0f, work, work_size);
}
LORT_DEF lort_status lort_tucker_delta(const lort_tucker_desc *desc, float *dW,
                                       const float *params, int layer, int matrix, void *work,
                                       size_t work_size) {
    lort__joint J;
    lort_status st;
    if ((st = lort__tucker_joint(desc, &J))) return st;
    return lort__joint_dense(&J, dW, params, layer, matrix, 1.0f, 0.0f, work, work_size);
}

#endif /* LORT__HAS_TUCKER */

// >>nf4 ================================================================================== impl
#if LORT__HAS_NF4

/* The 16 NF4 levels (QLoRA, bitsandbytes) and the 15 midpoints between neighbours, which are
   the thresholds of bitsandbytes' quantisation tree (code = number of midpoints below x). */
static const float lort__nf4_lv[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
static const float lort__nf4_mid[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

/* Rows of W dequantised per tile of the NF4 GEMM: about LORT_NF4_TILE_FLOATS floats. */
#ifndef LORT_NF4_TILE_FLOATS
#define LORT_NF4_TILE_FLOATS (1 << 20)
#endif

LORT_DEF float lort_nf4_level(int code) {
    return code >= 0 && code < 16 ? lort__nf4_lv[code] : 0.0f;
}

/* count = d_out * d_in and the blob's bytes, validated. */
LORT__PRIVATE lort_status lort__nf4_dims(int d_in, int d_out, size_t *count, size_t *bytes) {
    size_t c, t;
    if (d_in <= 0 || d_out <= 0) return LORT_ERR_INVALID_ARG;
    if (!lort__mul((size_t)d_out, (size_t)d_in, &c) || !lort__mul(c, sizeof(float), &t))
        return LORT_ERR_OVERFLOW;
    *count = c;
    if (bytes) *bytes = (c + LORT_NF4_BLOCK - 1) / LORT_NF4_BLOCK * sizeof(float) + (c + 1) / 2;
    return LORT_OK;
}
LORT__PRIVATE int lort__nf4_tile_rows(int d_in, int d_out) {
    int t = LORT_NF4_TILE_FLOATS / d_in;
    return t < 1 ? 1 : (t > d_out ? d_out : t);
}

LORT_DEF lort_status lort_nf4_size(int d_in, int d_out, size_t *bytes) {
    size_t c;
    if (!bytes) return LORT_ERR_NULL;
    return lort__nf4_dims(d_in, d_out, &c, bytes);
}

LORT_DEF lort_status lort_nf4_quantize(void *q, const float *W, int d_in, int d_out) {
    size_t count, nb, b, i;
    unsigned char *codes;
    lort_status st;
    if ((st = lort__nf4_dims(d_in, d_out, &count, NULL))) return st;
    if (!q || !W) return LORT_ERR_NULL;
    if (!lort__all_finite(W, count)) return LORT_ERR_NONFINITE;
    nb = (count + LORT_NF4_BLOCK - 1) / LORT_NF4_BLOCK;
    codes = (unsigned char *)q + nb * sizeof(float);
    memset(codes, 0, (count + 1) / 2);
    for (b = 0; b < nb; ++b) {
        size_t e0 = b * LORT_NF4_BLOCK, e1 = e0 + LORT_NF4_BLOCK < count ? e0 + LORT_NF4_BLOCK : count;
        float amax = 0.0f, inv;
        for (i = e0; i < e1; ++i)
            if (fabsf(W[i]) > amax) amax = fabsf(W[i]);
        memcpy((unsigned char *)q + b * sizeof(float), &amax, sizeof(float));
        inv = amax > 0.0f ? 1.0f / amax : 0.0f; /* bitsandbytes: x = w * (1 / absmax) */
        for (i = e0; i < e1; ++i) {
            unsigned c = 0u, k; /* all-zero block: bitsandbytes' 0 * (1/0) = NaN -> code 0 */
            if (amax > 0.0f) {
                /* a denormal absmax has an infinite reciprocal: divide instead (|x| <= 1) */
                float x = lort__finite(inv) ? W[i] * inv : W[i] / amax;
                for (c = 0, k = 0; k < 15; ++k) c += (unsigned)(x > lort__nf4_mid[k]);
            }
            codes[i >> 1] = (unsigned char)(codes[i >> 1] | ((i & 1u) ? c : c << 4));
        }
    }
    return LORT_OK;
}

/* out[0..count) = dequantised elements [e0, e0 + count) of a blob with nb blocks. */
LORT__PRIVATE void lort__nf4_deq(float *LORT_RESTRICT out, const unsigned char *LORT_RESTRICT q,
                                 size_t nb, size_t e0, size_t count) {
    const unsigned char *codes = q + nb * sizeof(float);
    size_t e = e0, end = e0 + count;
    while (e < end) {
        size_t b = e / LORT_NF4_BLOCK, bend = (b + 1) * LORT_NF4_BLOCK;
        float a;
        if (bend > end) bend = end;
        memcpy(&a, q + b * sizeof(float), sizeof(float));
        if (e & 1u) *out++ = lort__nf4_lv[codes[e++ >> 1] & 15u] * a;
        for (; e + 1 < bend; e += 2, out += 2) {
            unsigned c = codes[e >> 1];
            out[0] = lort__nf4_lv[c >> 4] * a;
            out[1] = lort__nf4_lv[c & 15u] * a;
        }
        if (e < bend) *out++ = lort__nf4_lv[codes[e++ >> 1] >> 4] * a;
    }
}

LORT_DEF lort_status lort_nf4_dequantize(float *W, const void *q, int d_in, int d_out) {
    size_t count;
    lort_status st;
    if ((st = lort__nf4_dims(d_in, d_out, &count, NULL))) return st;
    if (!q || !W) return LORT_ERR_NULL;
    lort__nf4_deq(W, (const unsigned char *)q, (count + LORT_NF4_BLOCK - 1) / LORT_NF4_BLOCK, 0,
                  count);
    return LORT_OK;
}

/* bwd = 0: y (n, d_out) += x deq(W)^T;  bwd = 1: dx (n, d_in) += dy deq(W). One tile of rows of
   W at a time in `tile` (lort__nf4_tile_rows * d_in floats). */
LORT__PRIVATE void lort__nf4_linear(int bwd, float *out, const float *in, const void *Wq, int n,
                                    int d_in, int d_out, float *tile) {
    int tr = lort__nf4_tile_rows(d_in, d_out), r0;
    size_t nb = ((size_t)d_out * (size_t)d_in + LORT_NF4_BLOCK - 1) / LORT_NF4_BLOCK;
    for (r0 = 0; r0 < d_out; r0 += tr) {
        int rows = d_out - r0 < tr ? d_out - r0 : tr;
        lort__nf4_deq(tile, (const unsigned char *)Wq, nb, (size_t)r0 * (size_t)d_in,
                      (size_t)rows * (size_t)d_in);
        if (bwd) /* dx += dy[:, r0:r0+rows] W[r0:r0+rows, :] */
            lort__gemm(0, 0, n, d_in, rows, 1.0f, in + r0, d_out, tile, d_in, 1.0f, out, d_in);
        else     /* y[:, r0:r0+rows] += x W[r0:r0+rows, :]^T */
            lort__gemm(0, 1, n, rows, d_in, 1.0f, in, d_in, tile, d_in, 1.0f, out + r0, d_out);
    }
}

LORT_DEF lort_status lort_nf4_linear_workspace_size(int n, int d_in, int d_out, size_t *bytes) {
    lort__layout L;
    size_t c;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__nf4_dims(d_in, d_out, &c, NULL))) return st;
    if ((st = lort__rows_check(n, d_in, d_out))) return st;
    lort__lay_init(&L);
    lort__lay_add(&L, (size_t)lort__nf4_tile_rows(d_in, d_out) * (size_t)d_in);
    return lort__lay_bytes(&L, bytes);
}

LORT__PRIVATE lort_status lort__nf4_linear_call(int bwd, float *out, const float *in,
                                                const void *Wq, int n, int d_in, int d_out,
                                                void *work, size_t work_size) {
    lort__layout L;
    size_t c;
    lort_status st;
    if ((st = lort__nf4_dims(d_in, d_out, &c, NULL))) return st;
    if ((st = lort__rows_check(n, d_in, d_out))) return st;
    if (!out || !in || !Wq) return LORT_ERR_NULL;
    lort__lay_init(&L);
    lort__lay_add(&L, (size_t)lort__nf4_tile_rows(d_in, d_out) * (size_t)d_in);
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    LORT__DEBUG_FINITE(in, (size_t)n * (size_t)(bwd ? d_out : d_in));
    lort__nf4_linear(bwd, out, in, Wq, n, d_in, d_out, lort__lay_base(work));
    return LORT_OK;
}
LORT_DEF lort_status lort_nf4_linear_forward(float *y, const float *x, const void *Wq, int n,
                                             int d_in, int d_out, void *work, size_t work_size) {
    return lort__nf4_linear_call(0, y, x, Wq, n, d_in, d_out, work, work_size);
}
LORT_DEF lort_status lort_nf4_linear_backward(float *dx, const float *dy, const void *Wq, int n,
                                              int d_in, int d_out, void *work,
                                              size_t work_size) {
    return lort__nf4_linear_call(1, dx, dy, Wq, n, d_in, d_out, work, work_size);
}

#endif /* LORT__HAS_NF4 */

// >>mpo ================================================================================== impl
#if LORT__HAS_MPO

/* ---- the plan of one mpo call: train, path, buffer layouts --------------------------------- */

enum { LORT__MD_SUF, LORT__MD_BIG1, LORT__MD_BIG2, LORT__MD_TILE };  /* dense / materialise */
enum { LORT__MF_Z, LORT__MF_DZ0, LORT__MF_DZ1, LORT__MF_TILE, LORT__MF_TMP }; /* factored; TILE is
                                                                            slot 3 in both */

typedef struct lort__mpo_plan {
    lort__train T;
    int path, n, res;
    size_t zoff[LORT_MPO_MAX_CORES + 1], zsize, dzmax;  /* factored: output of step k at zoff[k] */
    size_t sufoff[LORT_MPO_MAX_CORES + 1], sufsize;     /* dense: suffix R_k at sufoff[k] */
    size_t tile;                                        /* floats of the NF4 tile, or 0 */
    lort__layout work, mat, cache;                      /* mat: materialise (merge / delta) */
    size_t work_bytes;                                  /* max(work, mat) */
} lort__mpo_plan;

/* prod_{m > k} i_m  and  prod_{m < k} j_m */
LORT__PRIVATE size_t lort__mpo_iafter(const lort__train *T, int k) {
    size_t p = 1;
    int m;
    for (m = k + 1; m < T->d; ++m) p *= (size_t)T->rm[m];
    return p;
}
LORT__PRIVATE size_t lort__mpo_jbefore(const lort__train *T, int k) {
    size_t p = 1;
    int m;
    for (m = 0; m < k; ++m) p *= (size_t)T->cm[m];
    return p;
}

LORT__PRIVATE void lort__mpo_dense_layout(const lort__mpo_plan *P, lort__layout *L, int big2) {
    lort__lay_init(L);
    lort__lay_put(L, LORT__MD_SUF, P->sufsize);
    lort__lay_put(L, LORT__MD_BIG1, P->T.size);
    lort__lay_put(L, LORT__MD_BIG2, big2 ? P->T.size : 0);
    lort__lay_put(L, LORT__MD_TILE, P->tile);
}

/* n = 0: no rows (merge, delta, init). */
LORT__PRIVATE lort_status lort__mpo_plan_make(const lort_mpo_desc *d, int n, lort__mpo_plan *P) {
    lort__train *T = &P->T;
    lort__layout fl;
    lort_status st;
    int k, N, fac1 = 0;
    size_t t, b1, b2;
    double Id, Jd, fac = 0.0, den = 0.0, mat = 0.0, nn = (double)n;
    if ((st = lort__mpo_train(d, T))) return st;
    N = T->d;
    P->n = n;
    P->res = d->residual;
    if (n != 0 && (st = lort__rows_check(n, T->cols, T->rows))) return st;
    /* dense: suffixes R_k (rank[k], rest[k]) for k = 1..N-2 (R_{N-1} is core N-1) */
    P->sufsize = 0;
    for (k = 1; k + 1 < N; ++k) {
        P->sufoff[k] = P->sufsize;
        if (!lort__add_mul(&P->sufsize, (size_t)T->rank[k], T->rest[k])) return LORT_ERR_OVERFLOW;
    }
    Id = (double)T->rows;
    Jd = (double)T->cols;
    for (k = 1; k + 1 < N; ++k)
        mat += 2.0 * (double)T->rank[k] * (double)T->mode[k] * (double)T->rest[k + 1] * (double)T->rank[k + 1];
    if (N > 1) mat += 2.0 * (double)T->size * (double)T->rank[1];
    den = 2.0 * mat + 6.0 * nn * Id * Jd;
    for (k = 0; k < N; ++k)
        den += 4.0 * (double)T->rank[k] * (double)T->mode[k] * (double)T->rest[k + 1] * (double)T->rank[k + 1];
    P->tile = d->residual == LORT_MPO_RESIDUAL_NF4
                  ? (size_t)lort__nf4_tile_rows(T->cols, T->rows) * (size_t)T->cols : 0;
    lort__lay_init(&P->cache);
    lort__mpo_dense_layout(P, &P->mat, 0);
    P->path = LORT_MPO_DENSE;
    if (n != 0) {
        /* factored: step k reads (R_k, j_k rank[k+1]) and writes (i_k, R_k, rank[k]),
           R_k = iafter(k) n jbefore(k); outputs of steps N-1..1 are kept (cache) */
        P->zsize = 0;
        P->dzmax = (size_t)n * (size_t)T->rows;
        for (k = N - 1; k >= 0; --k) {
            size_t R = 0, out;
            if (!lort__mul3(lort__mpo_iafter(T, k), (size_t)n, lort__mpo_jbefore(T, k), &R) ||
                R > (size_t)INT_MAX ||
                !lort__mul3(R, (size_t)T->rm[k], (size_t)T->rank[k], &out) ||
                !lort__mul(out, sizeof(float), &t))
                return LORT_ERR_OVERFLOW;
            fac += 2.0 * (double)R * (double)T->rank[k] * (double)T->cm[k] * (double)T->rank[k + 1] * (double)T->rm[k];
            if (k > 0) {
                P->zoff[k] = P->zsize;
                if (out > LORT__SIZE_LIMIT / sizeof(float) - P->zsize) return LORT_ERR_OVERFLOW;
                P->zsize += out;
                if (out > P->dzmax) P->dzmax = out;
            }
        }
        fac *= 3.0;
        if (d->residual == LORT_MPO_RESIDUAL_F32) fac += 4.0 * nn * Id * Jd;
        P->path = d->path == LORT_MPO_AUTO ? (den < fac ? LORT_MPO_DENSE : LORT_MPO_FACTORED)
                                           : d->path;
        /* Both costs are affine in n, so AUTO takes the factored path below some n* and the
           dense one above it. Sizes at n must serve every call with n' <= n rows: when AUTO
           would pick factored at n' = 1, the factored buffers at n (which bound those at any
           n' <= n) are included in the workspace and the cache. */
        fac1 = d->path == LORT_MPO_AUTO && !(den - 6.0 * (nn - 1.0) * Id * Jd < fac / nn);
        lort__lay_init(&fl);
        lort__lay_put(&fl, LORT__MF_Z, P->zsize);
        lort__lay_put(&fl, LORT__MF_DZ0, P->dzmax);
        lort__lay_put(&fl, LORT__MF_DZ1, P->dzmax);
        lort__lay_put(&fl, LORT__MF_TILE, P->tile);
        lort__lay_put(&fl, LORT__MF_TMP, P->dzmax);
        if (P->path == LORT_MPO_DENSE) lort__mpo_dense_layout(P, &P->work, 1);
        else P->work = fl;
        if (P->path == LORT_MPO_FACTORED || fac1) lort__lay_add(&P->cache, P->zsize);
    } else {
        P->work = P->mat;
    }
    if ((st = lort__lay_bytes(&P->work, &b1)) || (st = lort__lay_bytes(&P->mat, &b2))) return st;
    P->work_bytes = b1 > b2 ? b1 : b2;
    if (fac1) {
        if ((st = lort__lay_bytes(&fl, &b1))) return st;
        if (b1 > P->work_bytes) P->work_bytes = b1;
    }
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__mpo_work_check(const lort__mpo_plan *P, const void *work,
                                               size_t work_size) {
    if (P->work_bytes == 0) return LORT_OK;
    if (!work) return LORT_ERR_NULL;
    return work_size < P->work_bytes ? LORT_ERR_WORKSPACE : LORT_OK;
}

/* ---- sizes ----------------------------------------------------------------------------------- */

LORT_DEF lort_status lort_mpo_desc_resolve(const lort_mpo_desc *desc, lort_mpo_desc *out) {
    lort__train T;
    lort_status st;
    int k;
    if (!out) return LORT_ERR_NULL;
    if ((st = lort__mpo_train(desc, &T))) return st;
    *out = *desc;
    out->d_out = T.rows;
    out->d_in = T.cols;
    for (k = 0; k <= T.d; ++k) out->bonds[k] = T.rank[k];
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_param_count(const lort_mpo_desc *desc, size_t *count) {
    lort__train T;
    lort_status st;
    if (!count) return LORT_ERR_NULL;
    if ((st = lort__mpo_train(desc, &T))) return st;
    *count = T.off[T.d];
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_core_offset(const lort_mpo_desc *desc, int k, size_t *offset) {
    lort__train T;
    lort_status st;
    if (!offset) return LORT_ERR_NULL;
    if ((st = lort__mpo_train(desc, &T))) return st;
    if (k < 0 || k >= T.d) return LORT_ERR_INVALID_ARG;
    *offset = T.off[k];
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_residual_size(const lort_mpo_desc *desc, size_t *bytes) {
    lort__train T;
    lort_status st;
    size_t c, b = 0;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__mpo_train(desc, &T))) return st;
    if (desc->residual == LORT_MPO_RESIDUAL_F32 && !lort__mul(T.size, sizeof(float), &b))
        return LORT_ERR_OVERFLOW;
    if (desc->residual == LORT_MPO_RESIDUAL_NF4 &&
        (st = lort__nf4_dims(T.cols, T.rows, &c, &b)))
        return st;
    *bytes = b;
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_path_used(const lort_mpo_desc *desc, int n, int *path) {
    lort__mpo_plan P;
    lort_status st;
    if (!path) return LORT_ERR_NULL;
    if (n <= 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort__mpo_plan_make(desc, n, &P))) return st;
    *path = P.path;
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_cache_size(const lort_mpo_desc *desc, int n, size_t *bytes) {
    lort__mpo_plan P;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if (n <= 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort__mpo_plan_make(desc, n, &P))) return st;
    return lort__lay_bytes(&P.cache, bytes);
}
LORT_DEF lort_status lort_mpo_workspace_size(const lort_mpo_desc *desc, int n, size_t *bytes) {
    lort__mpo_plan P;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if (n <= 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort__mpo_plan_make(desc, n, &P))) return st;
    *bytes = P.work_bytes;
    return LORT_OK;
}

/* ---- kernels --------------------------------------------------------------------------------- */

/* Suffix R_k (rank[k], rest[k]) of bond k = 1..N-1: R_{N-1} = core N-1, R_k = T_k R_{k+1}. */
LORT__PRIVATE const float *lort__mpo_suffix(const lort__mpo_plan *P, const float *cores,
                                            const float *suf, int k) {
    return k == P->T.d - 1 ? cores + P->T.off[k] : suf + P->sufoff[k];
}
/* Fills the suffixes and returns the interleaved M (size) in big1 (or the only core). */
LORT__PRIVATE const float *lort__mpo_materialise(const lort__mpo_plan *P, const float *cores,
                                                 float *suf, float *big1) {
    const lort__train *T = &P->T;
    int k, N = T->d;
    if (N == 1) return cores;
    for (k = N - 2; k >= 1; --k) /* R_k (rank[k] mode[k], rest[k+1]) = T_k R_{k+1} */
        lort__gemm(0, 0, T->rank[k] * T->mode[k], (int)T->rest[k + 1], T->rank[k + 1], 1.0f,
                   cores + T->off[k], T->rank[k + 1], lort__mpo_suffix(P, cores, suf, k + 1),
                   (int)T->rest[k + 1], 0.0f, suf + P->sufoff[k], (int)T->rest[k + 1]);
    lort__gemm(0, 0, T->mode[0], (int)T->rest[1], T->rank[1], 1.0f, cores, T->rank[1],
               lort__mpo_suffix(P, cores, suf, 1), (int)T->rest[1], 0.0f, big1, (int)T->rest[1]);
    return big1;
}

/* W (rows, cols) (+)= weight (W_res + M), W_res per res (a lort_mpo_residual; the dense kernels
   fold an fp32 one and pass NONE for NF4, which has its own tiled GEMM). */
LORT__PRIVATE void lort__mpo_to_dense(const lort__mpo_plan *P, int res, float *W,
                                      const float *cores, const void *residual, float weight,
                                      int add, float *base, const lort__layout *L) {
    const lort__train *T = &P->T;
    const float *M = lort__mpo_materialise(P, cores, lort__lay_slot(base, L, LORT__MD_SUF),
                                           lort__lay_slot(base, L, LORT__MD_BIG1));
    size_t i, cnt = T->size;
    if (res == LORT_MPO_RESIDUAL_F32) {
        const float *R = (const float *)residual;
        if (add)
            for (i = 0; i < cnt; ++i) W[i] += weight * R[i];
        else
            for (i = 0; i < cnt; ++i) W[i] = weight * R[i];
        add = 1;
    } else if (res == LORT_MPO_RESIDUAL_NF4) {
        float *tile = lort__lay_slot(base, L, LORT__MD_TILE);
        size_t nb = (cnt + LORT_NF4_BLOCK - 1) / LORT_NF4_BLOCK, e, c;
        for (e = 0; e < cnt; e += P->tile) {
            c = cnt - e < P->tile ? cnt - e : P->tile;
            lort__nf4_deq(tile, (const unsigned char *)residual, nb, e, c);
            if (add)
                for (i = 0; i < c; ++i) W[e + i] += weight * tile[i];
            else
                for (i = 0; i < c; ++i) W[e + i] = weight * tile[i];
        }
        add = 1;
    }
    lort__mpo_perm(T, W, M, 1, weight, add);
}


/* Factored forward steps N-1 .. last (last = 0: all, writing Z_0 = (rows, n) to z0). Step k,
   one GEMM: tmp (R_k, D_{k-1} i_k) = in (R_k, j_k D_k) T_k^T, T_k read as (D_{k-1} i_k, j_k D_k);
   then out (i_k, R_k D_{k-1}) = tmp^T moves a_k to the front, the layout step k-1 reads. */
LORT__PRIVATE void lort__mpo_fac_fwd(const lort__mpo_plan *P, const float *x, const float *cores,
                                     float *Z, float *z0, float *tmp, int last) {
    const lort__train *T = &P->T;
    int k;
    for (k = T->d - 1; k >= last; --k) {
        int R = (int)(lort__mpo_iafter(T, k) * (size_t)P->n * lort__mpo_jbefore(T, k));
        int K = T->cm[k] * T->rank[k + 1], Ni = T->rank[k] * T->rm[k];
        const float *in = k == T->d - 1 ? x : Z + P->zoff[k + 1];
        lort__gemm(0, 1, R, Ni, K, 1.0f, in, K, cores + T->off[k], K, 0.0f, tmp, Ni);
        lort__transpose(k == 0 ? z0 : Z + P->zoff[k], tmp, (size_t)R * (size_t)T->rank[k],
                        (size_t)T->rm[k]);
    }
}

LORT__PRIVATE lort_status lort__mpo_args(const lort_mpo_desc *d, const void *residual) {
    if (d->residual != LORT_MPO_RESIDUAL_NONE && !residual) return LORT_ERR_NULL;
    return LORT_OK;
}

LORT_DEF lort_status lort_mpo_forward(const lort_mpo_desc *desc, float *y, const float *x,
                                      const float *cores, const void *residual, int n,
                                      void *cache, size_t cache_size, void *work,
                                      size_t work_size) {
    lort__mpo_plan P;
    lort_status st;
    float *base;
    int i, r, rows, cols;
    if (n <= 0) return LORT_ERR_INVALID_ARG; /* as every family: n >= 1 */
    if ((st = lort__mpo_plan_make(desc, n, &P))) return st;
    if (!y || !x || !cores || (st = lort__mpo_args(desc, residual))) return st ? st : LORT_ERR_NULL;
    if (cache && (st = lort__lay_check(&P.cache, cache, cache_size, LORT_ERR_CACHE))) return st;
    if ((st = lort__mpo_work_check(&P, work, work_size))) return st;
    rows = P.T.rows;
    cols = P.T.cols;
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)cols);
    LORT__DEBUG_FINITE(cores, P.T.off[P.T.d]);
    base = lort__lay_base(work);
    if (P.path == LORT_MPO_DENSE) {
        float *W = lort__lay_slot(base, &P.work, LORT__MD_BIG2);
        lort__mpo_to_dense(&P, P.res == LORT_MPO_RESIDUAL_F32 ? P.res : LORT_MPO_RESIDUAL_NONE,
                           W, cores, residual, 1.0f, 0, base, &P.work);
        lort__gemm(0, 1, n, rows, cols, 1.0f, x, cols, W, cols, 1.0f, y, rows); /* y += x W^T */
    } else {
        float *Z = cache && P.zsize ? lort__lay_base(cache) : lort__lay_slot(base, &P.work, LORT__MF_Z);
        float *YT = lort__lay_slot(base, &P.work, LORT__MF_DZ0);
        lort__mpo_fac_fwd(&P, x, cores, Z, YT, lort__lay_slot(base, &P.work, LORT__MF_TMP), 0);
        for (r = 0; r < rows; ++r) /* y (n, rows) += YT^T */
            for (i = 0; i < n; ++i) y[(size_t)i * (size_t)rows + (size_t)r] += YT[(size_t)r * (size_t)n + (size_t)i];
        if (P.res == LORT_MPO_RESIDUAL_F32)
            lort__gemm(0, 1, n, rows, cols, 1.0f, x, cols, (const float *)residual, cols, 1.0f, y, rows);
    }
    if (P.res == LORT_MPO_RESIDUAL_NF4)
        lort__nf4_linear(0, y, x, residual, n, cols, rows,
                         lort__lay_slot(base, &P.work, LORT__MD_TILE));
    return LORT_OK;
}

/* Dense path of backward: dx += dy W_eff; dW = dy^T x interleaved to F_0, then per core
   dT_k += F_k R_{k+1}^T and F_{k+1} = T_k^T F_k (MATH >>mpo). NF4 W_res is the caller's. */
LORT__PRIVATE void lort__mpo_backward_dense(const lort__mpo_plan *P, float *dx, float *dcores,
                                            const float *dy, const float *x, const float *cores,
                                            const void *residual, int n, float *base) {
    const lort__train *T = &P->T;
    int k, rows = T->rows, cols = T->cols, N = T->d;
    float *suf = lort__lay_slot(base, &P->work, LORT__MD_SUF);
    float *F = lort__lay_slot(base, &P->work, LORT__MD_BIG1);
    float *G = lort__lay_slot(base, &P->work, LORT__MD_BIG2), *t;
    static const float one = 1.0f;
    lort__mpo_to_dense(P, P->res == LORT_MPO_RESIDUAL_F32 ? P->res : LORT_MPO_RESIDUAL_NONE, G,
                       cores, residual, 1.0f, 0, base, &P->work);
    if (dx) lort__gemm(0, 0, n, cols, rows, 1.0f, dy, rows, G, cols, 1.0f, dx, cols);
    if (!dcores) return;
    /* dW = dy^T x (rows, cols), interleaved into F = F_0; for each core k:
       dT_k (rank[k] mode[k], rank[k+1]) += F_k (., rest[k+1]) R_{k+1}^T;
       F_{k+1} (rank[k+1], rest[k+1]) = T_k^T F_k */
    lort__gemm(1, 0, rows, cols, n, 1.0f, dy, rows, x, cols, 0.0f, G, cols);
    lort__mpo_perm(T, F, G, 0, 1.0f, 0);
    for (k = 0; k < N; ++k) {
        int m = T->rank[k] * T->mode[k], c = (int)T->rest[k + 1], rr = T->rank[k + 1];
        const float *R = k == N - 1 ? &one : lort__mpo_suffix(P, cores, suf, k + 1);
        lort__gemm(0, 1, m, rr, c, 1.0f, F, c, R, c, 1.0f, dcores + T->off[k], rr);
        if (k == N - 1) break;
        lort__gemm(1, 0, rr, c, m, 1.0f, cores + T->off[k], rr, F, c, 0.0f, G, c);
        t = F;
        F = G;
        G = t;
    }
}

/* Factored path of backward, step by step from dZ_0 = dy^T (MATH >>mpo): dT_k += dZ_k^T
   Z_{k+1}, dZ_{k+1} = dZ_k T_k; dZ_{N+1} is dx. Z comes from the cache or is recomputed. */
LORT__PRIVATE void lort__mpo_backward_factored(const lort__mpo_plan *P, float *dx, float *dcores,
                                               const float *dy, const float *x,
                                               const float *cores, const void *residual, int n,
                                               const void *cache, float *base) {
    const lort__train *T = &P->T;
    int k, rows = T->rows, cols = T->cols, N = T->d;
    float *Z = cache && P->zsize ? lort__lay_base((void *)(uintptr_t)cache)
                                 : lort__lay_slot(base, &P->work, LORT__MF_Z);
    float *dZ = lort__lay_slot(base, &P->work, LORT__MF_DZ0);
    float *dN = lort__lay_slot(base, &P->work, LORT__MF_DZ1), *t;
    float *tmp = lort__lay_slot(base, &P->work, LORT__MF_TMP);
    if (!cache && N > 1) lort__mpo_fac_fwd(P, x, cores, Z, NULL, tmp, 1);
    lort__transpose(dZ, dy, (size_t)n, (size_t)rows); /* dZ_0 (rows, n) = dy^T */
    for (k = 0; k < N; ++k) {
        int R = (int)(lort__mpo_iafter(T, k) * (size_t)n * lort__mpo_jbefore(T, k));
        int K = T->cm[k] * T->rank[k + 1], Ni = T->rank[k] * T->rm[k];
        const float *in = k == N - 1 ? x : Z + P->zoff[k + 1];
        float *din = k == N - 1 ? dx : dN;
        /* tmp (R_k, D_{k-1} i_k) = dZ_k (i_k, R_k D_{k-1})^T;  dT_k += tmp^T in;
           din (R_k, j_k D_k) (+)= tmp T_k (dZ_{N+1} is dx itself) */
        lort__transpose(tmp, dZ, (size_t)T->rm[k], (size_t)R * (size_t)T->rank[k]);
        if (dcores)
            lort__gemm(1, 0, Ni, K, R, 1.0f, tmp, Ni, in, K, 1.0f, dcores + T->off[k], K);
        if (din)
            lort__gemm(0, 0, R, K, Ni, 1.0f, tmp, Ni, cores + T->off[k], K,
                       k == N - 1 ? 1.0f : 0.0f, din, K);
        t = dZ;
        dZ = dN;
        dN = t;
    }
    if (dx && P->res == LORT_MPO_RESIDUAL_F32)
        lort__gemm(0, 0, n, cols, rows, 1.0f, dy, rows, (const float *)residual, cols, 1.0f, dx,
                   cols);
}

LORT_DEF lort_status lort_mpo_backward(const lort_mpo_desc *desc, float *dx, float *dcores,
                                       const float *dy, const float *x, const float *cores,
                                       const void *residual, int n, const void *cache,
                                       size_t cache_size, void *work, size_t work_size) {
    lort__mpo_plan P;
    const lort__train *T = &P.T;
    lort_status st;
    float *base;
    if (n <= 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort__mpo_plan_make(desc, n, &P))) return st;
    if (!dy || !x || !cores || (st = lort__mpo_args(desc, residual))) return st ? st : LORT_ERR_NULL;
    if (cache && (st = lort__lay_check(&P.cache, cache, cache_size, LORT_ERR_CACHE))) return st;
    if ((st = lort__mpo_work_check(&P, work, work_size))) return st;
    LORT__DEBUG_FINITE(dy, (size_t)n * (size_t)T->rows);
    LORT__DEBUG_FINITE(x, (size_t)n * (size_t)T->cols);
    LORT__DEBUG_FINITE(cores, T->off[T->d]);
    base = lort__lay_base(work);
    if (!dx && !dcores) return LORT_OK;
    if (P.path == LORT_MPO_DENSE)
        lort__mpo_backward_dense(&P, dx, dcores, dy, x, cores, residual, n, base);
    else
        lort__mpo_backward_factored(&P, dx, dcores, dy, x, cores, residual, n, cache, base);
    if (dx && P.res == LORT_MPO_RESIDUAL_NF4)
        lort__nf4_linear(1, dx, dy, residual, n, T->cols, T->rows,
                         lort__lay_slot(base, &P.work, LORT__MD_TILE));
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__mpo_dense_call(const lort_mpo_desc *desc, float *W,
                                               const float *cores, const void *residual,
                                               float weight, int add, void *work,
                                               size_t work_size) {
    lort__mpo_plan P;
    lort_status st;
    if ((st = lort__mpo_plan_make(desc, 0, &P))) return st;
    if (!W || !cores || (st = lort__mpo_args(desc, residual))) return st ? st : LORT_ERR_NULL;
    if (!lort__finite(weight)) return LORT_ERR_INVALID_ARG;
    if ((st = lort__mpo_work_check(&P, work, work_size))) return st;
    lort__mpo_to_dense(&P, P.res, W, cores, residual, weight, add, lort__lay_base(work), &P.mat);
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_merge(const lort_mpo_desc *desc, float *W, const float *cores,
                                    const void *residual, float weight, void *work,
                                    size_t work_size) {
    return lort__mpo_dense_call(desc, W, cores, residual, weight, 1, work, work_size);
}
LORT_DEF lort_status lort_mpo_delta(const lort_mpo_desc *desc, float *dW, const float *cores,
                                    const void *residual, void *work, size_t work_size) {
    return lort__mpo_dense_call(desc, dW, cores, residual, 1.0f, 0, work, work_size);
}

/* Init workspace: TT-SVD, then (residual) the materialised MPO and W_res. */
LORT__PRIVATE lort_status lort__mpo_init_plan(const lort_mpo_desc *d, lort__mpo_plan *P,
                                              lort__layout *L, size_t *svd_bytes,
                                              size_t *bytes) {
    lort__layout D;
    size_t b1, b2;
    lort_status st;
    if ((st = lort__mpo_plan_make(d, 0, P))) return st;
    if ((st = lort__ttsvd_layout(&P->T, &d->svd, L, svd_bytes))) return st;
    lort__mpo_dense_layout(P, &D, 1); /* placed after the cores (slot OUT) for mpo init */
    if ((st = lort__lay_bytes(L, &b1)) || (st = lort__lay_bytes(&D, &b2))) return st;
    if (b2 > LORT__SIZE_LIMIT - L->off[LORT__TS_A]) return LORT_ERR_OVERFLOW;
    b2 += L->off[LORT__TS_A];
    *bytes = b1 > b2 ? b1 : b2;
    return LORT_OK;
}
LORT_DEF lort_status lort_mpo_init_workspace_size(const lort_mpo_desc *desc, size_t *bytes) {
    lort__mpo_plan P;
    lort__layout L;
    size_t sb;
    if (!bytes) return LORT_ERR_NULL;
    return lort__mpo_init_plan(desc, &P, &L, &sb, bytes);
}

LORT_DEF lort_status lort_mpo_from_dense(const lort_mpo_desc *desc, float *cores, float *err,
                                         const float *W, void *work, size_t work_size) {
    lort__mpo_plan P;
    lort__layout L;
    size_t sb, need;
    double e2 = 0.0;
    lort_status st;
    if ((st = lort__mpo_init_plan(desc, &P, &L, &sb, &need))) return st;
    if (!cores || !W) return LORT_ERR_NULL;
    if (!work) return LORT_ERR_NULL;
    if (work_size < need) return LORT_ERR_WORKSPACE;
    if ((st = lort__ttsvd(&P.T, W, &desc->svd, err ? &e2 : NULL, lort__lay_base(work), &L, sb)))
        return st;
    memcpy(cores, lort__lay_slot(lort__lay_base(work), &L, LORT__TS_OUT),
           P.T.off[P.T.d] * sizeof(float));
    if (err) *err = (float)sqrt(e2);
    return LORT_OK;
}

LORT_DEF lort_status lort_mpo_init(const lort_mpo_desc *desc, float *cores, void *residual,
                                   float *err, const float *W0, void *work, size_t work_size) {
    lort__mpo_plan P;
    lort__layout L, D;
    size_t sb, need;
    float *base, *Wr, *tc, e = 0.0f;
    lort_status st;
    if ((st = lort__mpo_init_plan(desc, &P, &L, &sb, &need))) return st;
    if (!cores || !W0 || (desc->residual != LORT_MPO_RESIDUAL_NONE && !residual)) return LORT_ERR_NULL;
    if (!work) return LORT_ERR_NULL;
    if (work_size < need) return LORT_ERR_WORKSPACE;
    base = lort__lay_base(work);
    if ((st = lort__ttsvd(&P.T, W0, &desc->svd, NULL, base, &L, sb))) return st;
    tc = lort__lay_slot(base, &L, LORT__TS_OUT); /* the cores, kept while the rest is reused */
    if (desc->residual != LORT_MPO_RESIDUAL_NONE || err) {
        /* W_res = W0 - MPO(cores), exactly what the layer subtracts, built after the cores */
        float *bd = (float *)(void *)((char *)base + L.off[LORT__TS_A]);
        lort__mpo_dense_layout(&P, &D, 1);
        Wr = lort__lay_slot(bd, &D, LORT__MD_BIG2);
        memcpy(Wr, W0, P.T.size * sizeof(float));
        lort__mpo_to_dense(&P, LORT_MPO_RESIDUAL_NONE, Wr, tc, NULL, -1.0f, 1, bd, &D); /* W0 - M */
        if (!lort__all_finite(Wr, P.T.size)) return LORT_ERR_NONFINITE; /* nothing written yet */
        e = (float)sqrt(lort__sumsq(Wr, P.T.size));
        /* the outputs, once nothing can fail (residual may be W0 itself: W0 was copied) */
        if (desc->residual == LORT_MPO_RESIDUAL_F32) memcpy(residual, Wr, P.T.size * sizeof(float));
        else if (desc->residual == LORT_MPO_RESIDUAL_NF4)
            (void)lort_nf4_quantize(residual, Wr, P.T.cols, P.T.rows); /* finite, valid dims */
    }
    memcpy(cores, tc, P.T.off[P.T.d] * sizeof(float));
    if (err) *err = e;
    return LORT_OK;
}

LORT_DEF lort_status lort_mpo_round_workspace_size(const lort_mpo_desc *from,
                                                   const lort_mpo_desc *to, size_t *bytes) {
    lort__train F, G;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__mpo_train(from, &F)) || (st = lort__mpo_train(to, &G))) return st;
    return lort__round_call(&F, NULL, &G, NULL, NULL, NULL, 0, bytes);
}
LORT_DEF lort_status lort_mpo_round(const lort_mpo_desc *from, const lort_mpo_desc *to,
                                    float *cores_out, float *err_bound, const float *cores_in,
                                    void *work, size_t work_size) {
    lort__train F, G;
    lort_status st;
    if ((st = lort__mpo_train(from, &F)) || (st = lort__mpo_train(to, &G))) return st;
    return lort__round_call(&F, cores_in, &G, cores_out, err_bound, work, work_size, NULL);
}
#endif /* LORT__HAS_MPO */

// >>adapter ============================================================================== impl

/* The families' flat layouts: lora params = A (r, d_in) then B (d_out, r);
   loraxs params = R (r, r), frozen = A (r, d_in) then B (d_out, r);
   tt_rep params = cores of W_A then cores of W_B (no frozen);
   tt_adp params = cores of W_down, cores of W_up, beta_d (b), beta_u (hidden) (no frozen);
   cp params = A (d, r), B (r, d_h), C_H (H, r), C_L (L, r), C_M (M, r), shared by all sites;
   tucker params = core, A, B, C_H, C_L, C_M (see lort_tucker_desc). The site of cp and tucker
   is (a->layer, a->matrix).
   mpo params = cores T_1..T_N, frozen = W_res (fp32 or the NF4 blob; none for NONE). */
LORT_DEF lort_status lort_adapter_sizes_query(const lort_adapter *a, int n,
                                              lort_adapter_sizes *sizes) {
    lort_status st;
    lort_adapter_sizes z;
    if (!a || !sizes) return LORT_ERR_NULL;
    memset(&z, 0, sizeof(z));
    st = LORT_OK;
    (void)st, (void)n; /* with few families compiled in */
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        if ((st = lort_lora_param_count(&a->desc.lora, &z.params)) ||
            (st = lort_lora_cache_size(&a->desc.lora, n, &z.cache)) ||
            (st = lort_lora_workspace_size(&a->desc.lora, n, &z.work)))
            return st;
        z.d_in = a->desc.lora.d_in;
        z.d_out = a->desc.lora.d_out;
        break;
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        if ((st = lort_loraxs_param_count(&a->desc.loraxs, &z.params)) ||
            (st = lort_loraxs_frozen_count(&a->desc.loraxs, &z.frozen_bytes)) ||
            (st = lort_loraxs_cache_size(&a->desc.loraxs, n, &z.cache)) ||
            (st = lort_loraxs_workspace_size(&a->desc.loraxs, n, &z.work)) ||
            (st = lort_loraxs_init_workspace_size(&a->desc.loraxs, &z.init_work)))
            return st;
        if (!lort__mul(z.frozen_bytes, sizeof(float), &z.frozen_bytes)) return LORT_ERR_OVERFLOW;
        z.d_in = a->desc.loraxs.d_in;
        z.d_out = a->desc.loraxs.d_out;
        break;
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP:
        if ((st = lort_tt_rep_param_count(&a->desc.tt_rep, &z.params)) ||
            (st = lort_tt_rep_cache_size(&a->desc.tt_rep, n, &z.cache)) ||
            (st = lort_tt_rep_workspace_size(&a->desc.tt_rep, n, &z.work)))
            return st;
        z.d_in = a->desc.tt_rep.d_in;
        z.d_out = a->desc.tt_rep.d_out;
        break;
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP:
        if ((st = lort_tt_adp_param_count(&a->desc.tt_adp, &z.params)) ||
            (st = lort_tt_adp_cache_size(&a->desc.tt_adp, n, &z.cache)) ||
            (st = lort_tt_adp_workspace_size(&a->desc.tt_adp, n, &z.work)))
            return st;
        z.d_in = a->desc.tt_adp.hidden;
        z.d_out = a->desc.tt_adp.hidden;
        break;
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP:
        if ((st = lort_cp_param_count(&a->desc.cp, &z.params)) ||
            (st = lort_cp_cache_size(&a->desc.cp, n, &z.cache)) ||
            (st = lort_cp_workspace_size(&a->desc.cp, n, &z.work)) ||
            (st = lort_cp_site_dims(&a->desc.cp, a->matrix, &z.d_in, &z.d_out)))
            return st;
        if (a->layer < 0 || a->layer >= a->desc.cp.layers) return LORT_ERR_INVALID_ARG;
        break;
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER:
        if ((st = lort_tucker_param_count(&a->desc.tucker, &z.params)) ||
            (st = lort_tucker_cache_size(&a->desc.tucker, n, &z.cache)) ||
            (st = lort_tucker_workspace_size(&a->desc.tucker, n, &z.work)) ||
            (st = lort_tucker_site_dims(&a->desc.tucker, a->matrix, &z.d_in, &z.d_out)))
            return st;
        if (a->layer < 0 || a->layer >= a->desc.tucker.layers) return LORT_ERR_INVALID_ARG;
        break;
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO: {
        lort_mpo_desc r;
        if ((st = lort_mpo_desc_resolve(&a->desc.mpo, &r)) ||
            (st = lort_mpo_param_count(&r, &z.params)) ||
            (st = lort_mpo_residual_size(&r, &z.frozen_bytes)) ||
            (st = lort_mpo_cache_size(&r, n, &z.cache)) ||
            (st = lort_mpo_workspace_size(&r, n, &z.work)) ||
            (st = lort_mpo_init_workspace_size(&r, &z.init_work)))
            return st;
        z.d_in = r.d_in;
        z.d_out = r.d_out;
        z.replaces_base = r.residual != LORT_MPO_RESIDUAL_NONE;
        break;
    }
#endif
    default:
        return LORT_ERR_UNSUPPORTED;
    }
    *sizes = z;
    return LORT_OK;
}

/* Pointers of the factors inside the flat vectors. */
typedef struct lort__views {
    float *A, *B, *R, *dA, *dB, *dR;
} lort__views;
/* The desc is validated (sizes checked) before any pointer arithmetic. */
LORT__PRIVATE lort_status lort__adapter_views(const lort_adapter *a, lort__views *v) {
    size_t ra = 0;
    lort_status st = LORT_OK;
    memset(v, 0, sizeof(*v));
    (void)ra; /* ra and st are unused when neither lora nor loraxs is compiled in */
    (void)st;
    if (!a) return LORT_ERR_NULL;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        if ((st = lort__lora_check(&a->desc.lora, NULL))) return st;
        if (!a->params) return LORT_ERR_NULL;
        ra = (size_t)a->desc.lora.r * (size_t)a->desc.lora.d_in;
        v->A = a->params;
        v->B = a->params + ra;
        if (a->grads) {
            v->dA = a->grads;
            v->dB = a->grads + ra;
        }
        return LORT_OK;
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        if ((st = lort_loraxs_frozen_count(&a->desc.loraxs, &ra))) return st;
        if (!a->params || !a->frozen) return LORT_ERR_NULL;
        ra = (size_t)a->desc.loraxs.r * (size_t)a->desc.loraxs.d_in;
        v->R = a->params;
        v->A = (float *)a->frozen;
        v->B = (float *)a->frozen + ra;
        v->dR = a->grads;
        return LORT_OK;
#endif
#if LORT__HAS_TT_REP || LORT__HAS_TT_ADP
    case LORT_KIND_TT_REP:
    case LORT_KIND_TT_ADP: /* the kernels take the flat vectors as they are */
        if (!a->params) return LORT_ERR_NULL;
        return LORT_OK;
#endif
#if LORT__HAS_CP || LORT__HAS_TUCKER
    case LORT_KIND_CP:
    case LORT_KIND_TUCKER: /* one flat block; the family kernels find the factors */
        if (!a->params) return LORT_ERR_NULL;
        v->A = a->params;
        v->dA = a->grads;
        return LORT_OK;
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO:
        if (!a->params || (a->desc.mpo.residual != LORT_MPO_RESIDUAL_NONE && !a->frozen))
            return LORT_ERR_NULL;
        v->A = a->params;
        v->dA = a->grads;
        return LORT_OK;
#endif
    default:
        return LORT_ERR_UNSUPPORTED;
    }
}

LORT_DEF lort_status lort_adapter_init(const lort_adapter *a, const float *W0, lort_rng *rng,
                                       void *work, size_t work_size) {
    lort__views v;
    lort_status st;
    (void)W0, (void)rng, (void)work, (void)work_size; /* some families use none of them */
    if ((st = lort__adapter_views(a, &v))) return st;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA: return lort_lora_init(&a->desc.lora, v.A, v.B, rng);
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        return lort_loraxs_init(&a->desc.loraxs, v.R, v.A, v.B, W0, rng, work, work_size);
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP: return lort_tt_rep_init(&a->desc.tt_rep, a->params, rng);
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP: return lort_tt_adp_init(&a->desc.tt_adp, a->params, rng);
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO:
        return lort_mpo_init(&a->desc.mpo, v.A, a->frozen, NULL, W0, work, work_size);
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP: return lort_cp_init(&a->desc.cp, v.A, rng);
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER: return lort_tucker_init(&a->desc.tucker, v.A, rng);
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
}

LORT_DEF lort_status lort_adapter_forward(const lort_adapter *a, float *y, const float *x, int n,
                                          void *cache, size_t cache_size, void *work,
                                          size_t work_size) {
    lort__views v;
    lort_status st;
    /* some are unused when few families are compiled in */
    (void)y, (void)x, (void)n, (void)cache, (void)cache_size, (void)work, (void)work_size;
    if ((st = lort__adapter_views(a, &v))) return st;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        return lort_lora_forward(&a->desc.lora, y, x, v.A, v.B, n, cache, cache_size, work,
                                 work_size);
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        return lort_loraxs_forward(&a->desc.loraxs, y, x, v.R, v.A, v.B, n, cache, cache_size,
                                   work, work_size);
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP:
        return lort_tt_rep_forward(&a->desc.tt_rep, y, x, a->params, n, cache, cache_size, work,
                                   work_size);
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP:
        return lort_tt_adp_forward(&a->desc.tt_adp, y, x, a->params, n, cache, cache_size, work,
                                   work_size);
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO:
        return lort_mpo_forward(&a->desc.mpo, y, x, v.A, a->frozen, n, cache, cache_size, work,
                                work_size);
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP:
        return lort_cp_forward(&a->desc.cp, y, x, v.A, a->layer, a->matrix, n, cache,
                               cache_size, work, work_size);
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER:
        return lort_tucker_forward(&a->desc.tucker, y, x, v.A, a->layer, a->matrix, n, cache,
                                   cache_size, work, work_size);
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
}

LORT_DEF lort_status lort_adapter_backward(const lort_adapter *a, float *dx, const float *dy,
                                           const float *x, int n, const void *cache,
                                           size_t cache_size, void *work, size_t work_size) {
    lort__views v;
    lort_status st;
    /* some are unused when few families are compiled in */
    (void)dx, (void)dy, (void)x, (void)n, (void)cache, (void)cache_size, (void)work,
        (void)work_size;
    if ((st = lort__adapter_views(a, &v))) return st;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        return lort_lora_backward(&a->desc.lora, dx, v.dA, v.dB, dy, x, v.A, v.B, n, cache,
                                  cache_size, work, work_size);
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        return lort_loraxs_backward(&a->desc.loraxs, dx, v.dR, dy, x, v.R, v.A, v.B, n, cache,
                                    cache_size, work, work_size);
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP:
        return lort_tt_rep_backward(&a->desc.tt_rep, dx, a->grads, dy, x, a->params, n, cache,
                                    cache_size, work, work_size);
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP:
        return lort_tt_adp_backward(&a->desc.tt_adp, dx, a->grads, dy, x, a->params, n, cache,
                                    cache_size, work, work_size);
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO:
        return lort_mpo_backward(&a->desc.mpo, dx, v.dA, dy, x, v.A, a->frozen, n, cache,
                                 cache_size, work, work_size);
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP:
        return lort_cp_backward(&a->desc.cp, dx, v.dA, dy, x, v.A, a->layer, a->matrix, n,
                                cache, cache_size, work, work_size);
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER:
        return lort_tucker_backward(&a->desc.tucker, dx, v.dA, dy, x, v.A, a->layer, a->matrix,
                                    n, cache, cache_size, work, work_size);
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
}

LORT_DEF lort_status lort_adapter_merge(const lort_adapter *a, float *W, float weight,
                                        void *work, size_t work_size) {
    lort__views v;
    lort_status st;
    (void)W, (void)weight, (void)work, (void)work_size; /* with few families compiled in */
    if ((st = lort__adapter_views(a, &v))) return st;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        return lort_lora_merge(&a->desc.lora, W, v.A, v.B, weight, work, work_size);
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        return lort_loraxs_merge(&a->desc.loraxs, W, v.R, v.A, v.B, weight, work, work_size);
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP:
        return lort_tt_rep_merge(&a->desc.tt_rep, W, a->params, weight, work, work_size);
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP: return lort__tt_adp_unmergeable(&a->desc.tt_adp, W);
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO:
        return lort_mpo_merge(&a->desc.mpo, W, v.A, a->frozen, weight, work, work_size);
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP:
        return lort_cp_merge(&a->desc.cp, W, v.A, a->layer, a->matrix, weight, work, work_size);
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER:
        return lort_tucker_merge(&a->desc.tucker, W, v.A, a->layer, a->matrix, weight, work,
                                 work_size);
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
}

LORT_DEF lort_status lort_adapter_delta(const lort_adapter *a, float *dW, void *work,
                                        size_t work_size) {
    lort__views v;
    lort_status st;
    (void)dW, (void)work, (void)work_size; /* with few families compiled in */
    if ((st = lort__adapter_views(a, &v))) return st;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA: return lort_lora_delta(&a->desc.lora, dW, v.A, v.B, work, work_size);
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        return lort_loraxs_delta(&a->desc.loraxs, dW, v.R, v.A, v.B, work, work_size);
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP:
        return lort_tt_rep_delta(&a->desc.tt_rep, dW, a->params, work, work_size);
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP: return lort__tt_adp_unmergeable(&a->desc.tt_adp, dW);
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO: return lort_mpo_delta(&a->desc.mpo, dW, v.A, a->frozen, work, work_size);
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP:
        return lort_cp_delta(&a->desc.cp, dW, v.A, a->layer, a->matrix, work, work_size);
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER:
        return lort_tucker_delta(&a->desc.tucker, dW, v.A, a->layer, a->matrix, work, work_size);
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
}

// >>set ================================================================================== impl

/* Messages into a caller buffer: truncated, always NUL-terminated, no stdio. A NULL buffer or
   size 0 discards them. Shared by every function that takes (msg, msg_size). */
typedef struct lort__msg {
    char *buf;
    size_t cap, len;
} lort__msg;
LORT__PRIVATE void lort__msg_init(lort__msg *m, char *buf, size_t cap) {
    m->buf = cap ? buf : NULL;
    m->cap = m->buf ? cap : 0;
    m->len = 0;
    if (m->buf) m->buf[0] = '\0';
}
LORT__PRIVATE void lort__msg_str(lort__msg *m, const char *s) {
    if (!m->buf || !s) return;
    while (*s && m->len + 1 < m->cap) m->buf[m->len++] = *s++;
    m->buf[m->len] = '\0';
}
LORT__PRIVATE void lort__msg_int(lort__msg *m, long long v) {
    char t[24];
    int k = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        t[k++] = (char)('0' + (int)(u % 10u));
        u /= 10u;
    } while (u);
    if (v < 0) t[k++] = '-';
    while (k > 0) {
        char c[2];
        c[0] = t[--k];
        c[1] = '\0';
        lort__msg_str(m, c);
    }
}
/* " out of range [lo, hi)" */
LORT__PRIVATE void lort__msg_range(lort__msg *m, long long lo, long long hi) {
    lort__msg_str(m, " out of range [");
    lort__msg_int(m, lo);
    lort__msg_str(m, ", ");
    lort__msg_int(m, hi);
    lort__msg_str(m, ")");
}

/* Back to the first len characters (drops a prefix that turned out not to be needed). */
LORT__PRIVATE void lort__msg_cut(lort__msg *m, size_t len) {
    if (m->buf && len < m->len) {
        m->len = len;
        m->buf[len] = '\0';
    }
}
LORT__PRIVATE const char *lort__kind_name(lort_kind kind) {
    switch (kind) {
    case LORT_KIND_LORA: return "lora";
    case LORT_KIND_LORAXS: return "loraxs";
    case LORT_KIND_TT_REP: return "tt_rep";
    case LORT_KIND_MPO: return "mpo";
    case LORT_KIND_CP: return "cp";
    case LORT_KIND_TUCKER: return "tucker";
    case LORT_KIND_TT_ADP: return "tt_adp";
    default: return "adapter";
    }
}

/* ---- what is wrong with a desc: the family checks again, in their order, in words ---------- */

/* A float in plain decimal: up to 6 significant digits, trailing zeros trimmed ("1.5", "-0.25",
   "3e+12" style exponents outside [1e-4, 1e9)); "nan", "inf", "-inf". */
LORT__PRIVATE void lort__msg_float(lort__msg *m, double v) {
    int e = 0, i, nd;
    long long digits;
    char t[8];
    if (isnan(v)) {
        lort__msg_str(m, "nan");
        return;
    }
    if (v < 0.0) {
        lort__msg_str(m, "-");
        v = -v;
    }
    if (v > 1.7976931348623157e308) {
        lort__msg_str(m, "inf");
        return;
    }
    if (!(v > 0.0)) {
        lort__msg_str(m, "0");
        return;
    }
    while (v >= 10.0) { v /= 10.0; ++e; }
    while (v < 1.0) { v *= 10.0; --e; }
    digits = (long long)(v * 100000.0 + 0.5); /* 6 significant digits, d.ddddd */
    if (digits >= 1000000) { digits /= 10; ++e; }
    for (i = 5; i >= 0; --i) { t[i] = (char)('0' + (int)(digits % 10)); digits /= 10; }
    for (nd = 6; nd > 1 && t[nd - 1] == '0'; --nd) {}
    t[nd] = '\0';
    if (e >= -4 && e < 9) {
        if (e < 0) {
            lort__msg_str(m, "0.");
            for (i = -1; i > e; --i) lort__msg_str(m, "0");
            lort__msg_str(m, t);
        } else {
            char c[2];
            c[1] = '\0';
            for (i = 0; i <= e || i < nd; ++i) {
                if (i == e + 1) lort__msg_str(m, ".");
                c[0] = i < nd ? t[i] : '0';
                lort__msg_str(m, c);
            }
        }
    } else {
        char c[2];
        c[0] = t[0];
        c[1] = '\0';
        lort__msg_str(m, c);
        if (nd > 1) {
            lort__msg_str(m, ".");
            lort__msg_str(m, t + 1);
        }
        lort__msg_str(m, e < 0 ? "e-" : "e+");
        lort__msg_int(m, e < 0 ? -e : e);
    }
}
/* "<field> = <v>, must be <rule>"; returns LORT_ERR_INVALID_ARG */
LORT__PRIVATE lort_status lort__msg_field(lort__msg *m, const char *field, long long v,
                                          const char *rule) {
    lort__msg_str(m, field);
    lort__msg_str(m, " = ");
    lort__msg_int(m, v);
    lort__msg_str(m, ", must be ");
    lort__msg_str(m, rule);
    return LORT_ERR_INVALID_ARG;
}
/* "<field>[k] = <v>, must be <rule>" */
LORT__PRIVATE lort_status lort__msg_field_at(lort__msg *m, const char *field, int k, long long v,
                                             const char *rule) {
    lort__msg_str(m, field);
    lort__msg_str(m, "[");
    lort__msg_int(m, k);
    lort__msg_str(m, "]");
    return lort__msg_field(m, "", v, rule);
}
LORT__PRIVATE lort_status lort__diag_float(lort__msg *m, const char *field, float v, int dropout) {
    if (dropout ? (v >= 0.0f && v < 1.0f) : lort__finite(v)) return LORT_OK;
    lort__msg_str(m, field);
    lort__msg_str(m, " = ");
    lort__msg_float(m, (double)v);
    lort__msg_str(m, dropout ? ", must be in [0, 1)" : ", must be finite");
    return LORT_ERR_INVALID_ARG;
}

/* lort__lowrank_check in words. */
LORT__PRIVATE lort_status lort__diag_lowrank(lort__msg *m, int d_in, int d_out, int r, float alpha,
                                             float dropout) {
    lort_status st;
    size_t t;
    if (d_in <= 0) return lort__msg_field(m, "d_in", d_in, "> 0");
    if (d_out <= 0) return lort__msg_field(m, "d_out", d_out, "> 0");
    if (r <= 0) return lort__msg_field(m, "r", r, "> 0");
    if ((st = lort__diag_float(m, "alpha", alpha, 0)) ||
        (st = lort__diag_float(m, "dropout", dropout, 1)))
        return st;
    if (!lort__mul((size_t)r, (size_t)d_in + (size_t)d_out, &t) || !lort__mul(t, sizeof(float), &t) ||
        !lort__mul3((size_t)d_in, (size_t)d_out, sizeof(float), &t)) {
        lort__msg_str(m, "r (d_in + d_out) or d_in d_out floats overflow size_t");
        return LORT_ERR_OVERFLOW;
    }
    return LORT_OK;
}

#if LORT__HAS_TT
/* lort__tt_plan_make (after lort__tt_embed) in words; `what` names the train. */
LORT__PRIVATE lort_status lort__diag_tt_words(lort__msg *m, const lort_tt_desc *d, int rows,
                                              int cols, lort_tt_desc *ep);
LORT__PRIVATE lort_status lort__diag_tt(lort__msg *m, const char *what, const lort_tt_desc *d,
                                        int rows, int cols) {
    lort_tt_desc e;
    lort_status st;
    size_t len = m->len;
    lort__msg_str(m, what);
    lort__msg_str(m, ": ");
    st = lort__diag_tt_words(m, d, rows, cols, &e);
    if (st == LORT_OK) lort__msg_cut(m, len);
    return st;
}
LORT__PRIVATE lort_status lort__diag_tt_words(lort__msg *m, const lort_tt_desc *d, int rows,
                                              int cols, lort_tt_desc *ep) {
    lort_tt_desc e;
    int k;
    size_t prod = 1, t;
    (void)ep;
    if (lort__tt_embed(d, rows, cols, &e)) {
        lort__msg_str(m, "(rows, cols) = (");
        lort__msg_int(m, d->rows);
        lort__msg_str(m, ", ");
        lort__msg_int(m, d->cols);
        lort__msg_str(m, "), must be (");
        lort__msg_int(m, rows);
        lort__msg_str(m, ", ");
        lort__msg_int(m, cols);
        lort__msg_str(m, ") or 0");
        return LORT_ERR_SHAPE;
    }
    if (e.n_cores < 1 || e.n_cores > LORT_TT_MAX_CORES) {
        lort__msg_str(m, "n_cores = ");
        lort__msg_int(m, e.n_cores);
        lort__msg_range(m, 1, LORT_TT_MAX_CORES + 1);
        return LORT_ERR_INVALID_ARG;
    }
    if (e.rows <= 0) return lort__msg_field(m, "rows", e.rows, "> 0");
    if (e.cols <= 0) return lort__msg_field(m, "cols", e.cols, "> 0");
    for (k = 0; k <= e.n_cores; ++k) {
        int r = e.ranks[k];
        if (k == 0 || k == e.n_cores) {
            if (r != 0 && r != 1)
                return lort__msg_field_at(m, "ranks", k, r, "0 or 1");
        } else if ((r ? r : e.rank) <= 0) {
            if (r) return lort__msg_field_at(m, "ranks", k, r, "> 0");
            lort__msg_str(m, "ranks[");
            lort__msg_int(m, k);
            lort__msg_str(m, "] = 0 takes rank = ");
            lort__msg_int(m, e.rank);
            lort__msg_str(m, ", must be > 0");
            return LORT_ERR_INVALID_ARG;
        }
    }
    for (k = 0; k < e.n_cores; ++k)
        if (e.modes[k] <= 0)
            return lort__msg_field_at(m, "modes", k, e.modes[k], "> 0");
    if ((size_t)e.rows * (size_t)e.cols > (size_t)INT_MAX) {
        lort__msg_str(m, "rows cols above INT_MAX");
        return LORT_ERR_OVERFLOW;
    }
    for (k = 0; k < e.n_cores; ++k) {
        int tl = k == 0 ? 1 : (e.ranks[k] ? e.ranks[k] : e.rank);
        int tr = k + 1 == e.n_cores ? 1 : (e.ranks[k + 1] ? e.ranks[k + 1] : e.rank);
        prod *= (size_t)e.modes[k];
        if (prod > (size_t)INT_MAX) {
            lort__msg_str(m, "prod of modes above INT_MAX");
            return LORT_ERR_OVERFLOW;
        }
        if (!lort__mul3((size_t)tl, (size_t)e.modes[k], (size_t)tr, &t) || t > (size_t)INT_MAX) {
            lort__msg_str(m, "core ");
            lort__msg_int(m, k);
            lort__msg_str(m, " above INT_MAX floats");
            return LORT_ERR_OVERFLOW;
        }
    }
    if (prod != (size_t)e.rows * (size_t)e.cols) {
        lort__msg_str(m, "prod of modes ");
        lort__msg_int(m, (long long)prod);
        lort__msg_str(m, " != rows cols ");
        lort__msg_int(m, (long long)e.rows * (long long)e.cols);
        return LORT_ERR_SHAPE;
    }
    return LORT_OK;
}

#endif /* LORT__HAS_TT */

/* lort__joint_check in words (cp: all ranks r; tucker: r1, r2, rh, rl, rm). */
LORT__PRIVATE lort_status lort__diag_joint(lort__msg *m, int tucker, int d, int heads, int layers,
                                           int matrices, const int *ranks, float alpha,
                                           float dropout, int head_side, int kv_heads) {
    static const char *const rn[5] = {"r1", "r2", "rh", "rl", "rm"};
    lort_status st;
    int k, kv;
    if (d <= 0) return lort__msg_field(m, "d", d, "> 0");
    if (heads <= 0) return lort__msg_field(m, "heads", heads, "> 0");
    if (layers <= 0) return lort__msg_field(m, "layers", layers, "> 0");
    if (matrices < 0)
        return lort__msg_field(m, "matrices", matrices, ">= 0 (0 = 4)");
    if (kv_heads < 0)
        return lort__msg_field(m, "kv_heads", kv_heads, ">= 0 (0 = heads)");
    for (k = 0; k < (tucker ? 5 : 1); ++k)
        if (ranks[k] <= 0)
            return lort__msg_field(m, tucker ? rn[k] : "r", ranks[k], "> 0");
    if ((st = lort__diag_float(m, "alpha", alpha, 0)) ||
        (st = lort__diag_float(m, "dropout", dropout, 1)))
        return st;
    if (head_side != LORT_CP_HEADS_OUT && head_side != LORT_CP_HEADS_IN)
        return lort__msg_field(m, "head_side", head_side, "LORT_CP_HEADS_OUT or _IN");
    if (d % heads) {
        lort__msg_str(m, "d = ");
        lort__msg_int(m, d);
        lort__msg_str(m, " not divisible by heads = ");
        lort__msg_int(m, heads);
        return LORT_ERR_SHAPE;
    }
    kv = kv_heads ? kv_heads : heads;
    if (kv > heads || heads % kv) {
        lort__msg_str(m, "kv_heads = ");
        lort__msg_int(m, kv);
        lort__msg_str(m, " does not divide heads = ");
        lort__msg_int(m, heads);
        return LORT_ERR_SHAPE;
    }
    if (head_side == LORT_CP_HEADS_IN && kv != heads) {
        lort__msg_str(m, "GQA (kv_heads != heads) needs head_side LORT_CP_HEADS_OUT");
        return LORT_ERR_UNSUPPORTED;
    }
    return LORT_OK;
}

/* lort__mpo_train in words. */
LORT__PRIVATE lort_status lort__diag_mpo(lort__msg *m, const lort_mpo_desc *d) {
    int k, N = d->n_cores;
    size_t pr = 1, pc = 1;
    if (N < 1 || N > LORT_MPO_MAX_CORES) {
        lort__msg_str(m, "n_cores = ");
        lort__msg_int(m, N);
        lort__msg_range(m, 1, LORT_MPO_MAX_CORES + 1);
        return LORT_ERR_INVALID_ARG;
    }
    if (d->d_in < 0) return lort__msg_field(m, "d_in", d->d_in, ">= 0");
    if (d->d_out < 0) return lort__msg_field(m, "d_out", d->d_out, ">= 0");
    if (d->bond < 0) return lort__msg_field(m, "bond", d->bond, ">= 0");
    if (d->path < LORT_MPO_AUTO || d->path > LORT_MPO_DENSE)
        return lort__msg_field(m, "path", d->path, "a lort_mpo_path");
    if (d->residual < LORT_MPO_RESIDUAL_NONE || d->residual > LORT_MPO_RESIDUAL_NF4)
        return lort__msg_field(m, "residual", d->residual, "a lort_mpo_residual");
    if (d->svd.oversample < 0)
        return lort__msg_field(m, "svd.oversample", d->svd.oversample, ">= 0");
    if (d->svd.max_sweeps < 0)
        return lort__msg_field(m, "svd.max_sweeps", d->svd.max_sweeps, ">= 0");
    for (k = 0; k < N; ++k) {
        int i = d->row_factors[k], j = d->col_factors[k];
        if (i <= 0) return lort__msg_field_at(m, "row_factors", k, i, "> 0");
        if (j <= 0) return lort__msg_field_at(m, "col_factors", k, j, "> 0");
        if (!lort__mul(pr, (size_t)i, &pr) || !lort__mul(pc, (size_t)j, &pc) ||
            pr > (size_t)INT_MAX || pc > (size_t)INT_MAX || (size_t)i * (size_t)j > (size_t)INT_MAX) {
            lort__msg_str(m, "a product of the factors is above INT_MAX");
            return LORT_ERR_OVERFLOW;
        }
    }
    if (d->d_out && (size_t)d->d_out != pr) {
        lort__msg_str(m, "prod of out modes ");
        lort__msg_int(m, (long long)pr);
        lort__msg_str(m, " != d_out ");
        lort__msg_int(m, d->d_out);
        return LORT_ERR_SHAPE;
    }
    if (d->d_in && (size_t)d->d_in != pc) {
        lort__msg_str(m, "prod of in modes ");
        lort__msg_int(m, (long long)pc);
        lort__msg_str(m, " != d_in ");
        lort__msg_int(m, d->d_in);
        return LORT_ERR_SHAPE;
    }
    if (d->bonds[0] < 0 || d->bonds[0] > 1)
        return lort__msg_field_at(m, "bonds", 0, d->bonds[0], "0 or 1");
    if (d->bonds[N] < 0 || d->bonds[N] > 1)
        return lort__msg_field_at(m, "bonds", N, d->bonds[N], "0 or 1");
    for (k = 1; k < N; ++k)
        if ((d->bonds[k] ? d->bonds[k] : d->bond) <= 0) {
            if (d->bonds[k]) return lort__msg_field_at(m, "bonds", k, d->bonds[k], "> 0");
            lort__msg_str(m, "bonds[");
            lort__msg_int(m, k);
            lort__msg_str(m, "] = 0 takes bond = 0, must be > 0");
            return LORT_ERR_INVALID_ARG;
        }
    return LORT_OK;
}

/* The checks of every family in words: the desc, then the site of joint kinds. Returns the
   status the check found (LORT_OK when the words found nothing). */
LORT__PRIVATE lort_status lort__adapter_diag(lort__msg *m, const lort_adapter *a) {
    lort_status st;
    if (a->kind >= LORT_KIND_LORA && a->kind <= LORT_KIND_TT_ADP) {
        lort__msg_str(m, lort__kind_name(a->kind));
        lort__msg_str(m, ": ");
    }
    switch (a->kind) {
    case LORT_KIND_LORA: {
        const lort_lora_desc *d = &a->desc.lora;
        if (d->init != LORT_LORA_INIT_DEFAULT && d->init != LORT_LORA_INIT_GAUSSIAN)
            return lort__msg_field(m, "init", d->init, "a lort_lora_init_kind");
        return lort__diag_lowrank(m, d->d_in, d->d_out, d->r, d->alpha, d->dropout);
    }
    case LORT_KIND_LORAXS: {
        const lort_loraxs_desc *d = &a->desc.loraxs;
        if ((st = lort__diag_lowrank(m, d->d_in, d->d_out, d->r, d->alpha, d->dropout))) return st;
        if (d->r > d->d_in || d->r > d->d_out) {
            lort__msg_str(m, "r = ");
            lort__msg_int(m, d->r);
            lort__msg_str(m, " > min(d_in, d_out) = ");
            lort__msg_int(m, d->d_in < d->d_out ? d->d_in : d->d_out);
            return LORT_ERR_SHAPE;
        }
        if (!lort__finite(d->init_std) || d->init_std < 0.0f) {
            lort__msg_str(m, "init_std = ");
            lort__msg_float(m, (double)d->init_std);
            lort__msg_str(m, ", must be finite and >= 0");
            return LORT_ERR_INVALID_ARG;
        }
        if (d->svd.oversample < 0)
            return lort__msg_field(m, "svd.oversample", d->svd.oversample, ">= 0");
        if (d->svd.max_sweeps < 0)
            return lort__msg_field(m, "svd.max_sweeps", d->svd.max_sweeps, ">= 0");
        return LORT_OK;
    }
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP: {
        const lort_tt_rep_desc *d = &a->desc.tt_rep;
        lort_tt_desc e;
        if ((st = lort__diag_lowrank(m, d->d_in, d->d_out, d->r, d->alpha, d->dropout))) return st;
        /* lort__tt_rep_check: both shapes (lort__tt_embed), then each train */
        if (lort__tt_embed(&d->A, d->d_in, d->r, &e) == LORT_OK &&
            lort__tt_embed(&d->B, d->r, d->d_out, &e) != LORT_OK)
            return lort__diag_tt(m, "B", &d->B, d->r, d->d_out);
        if ((st = lort__diag_tt(m, "A", &d->A, d->d_in, d->r))) return st;
        return lort__diag_tt(m, "B", &d->B, d->r, d->d_out);
    }
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP: {
        const lort_tt_adp_desc *d = &a->desc.tt_adp;
        lort_tt_desc td, tu;
        size_t t;
        if (d->hidden <= 0) return lort__msg_field(m, "hidden", d->hidden, "> 0");
        if (d->bottleneck <= 0)
            return lort__msg_field(m, "bottleneck", d->bottleneck, "> 0");
        if ((st = lort__diag_float(m, "scale", d->scale, 0))) return st;
        if (d->act < 0 || d->act > LORT_ACT_GELU_TANH)
            return lort__msg_field(m, "act", d->act, "a lort_act");
        if (d->placement != LORT_TT_ADP_OUTPUT && d->placement != LORT_TT_ADP_INPUT)
            return lort__msg_field(m, "placement", d->placement, "a lort_tt_adp_placement");
        if ((st = lort__diag_float(m, "dropout", d->dropout, 1))) return st;
        if (!lort__mul3((size_t)d->hidden, (size_t)d->bottleneck, sizeof(float), &t)) {
            lort__msg_str(m, "hidden bottleneck floats overflow size_t");
            return LORT_ERR_OVERFLOW;
        }
        if (lort__tt_embed(&d->down, d->hidden, d->bottleneck, &td))
            return lort__diag_tt(m, "down", &d->down, d->hidden, d->bottleneck);
        if (d->up.n_cores == 0) { /* the modes and ranks of down, reshaped the other way */
            tu = td;
            tu.rows = d->up.rows;
            tu.cols = d->up.cols;
        } else {
            tu = d->up;
        }
        if ((st = lort__diag_tt(m, "down", &td, d->hidden, d->bottleneck))) return st;
        return lort__diag_tt(m, "up", &tu, d->bottleneck, d->hidden);
    }
#endif
    case LORT_KIND_CP:
    case LORT_KIND_TUCKER: {
        int tk = a->kind == LORT_KIND_TUCKER, ranks[5], layers, M;
        if (tk) {
            const lort_tucker_desc *d = &a->desc.tucker;
            if (d->rh < 0) return lort__msg_field(m, "rh", d->rh, ">= 0 (0 = r1)");
            if (d->rl < 0) return lort__msg_field(m, "rl", d->rl, ">= 0 (0 = r1)");
            if (d->rm < 0) return lort__msg_field(m, "rm", d->rm, ">= 0 (0 = r1)");
            if (d->init < LORT_TUCKER_INIT_DEFAULT || d->init > LORT_TUCKER_INIT_FACT_TK)
                return lort__msg_field(m, "init", d->init, "a lort_tucker_init_kind");
            ranks[0] = d->r1;
            ranks[1] = d->r2;
            ranks[2] = d->rh ? d->rh : d->r1;
            ranks[3] = d->rl ? d->rl : d->r1;
            ranks[4] = d->rm ? d->rm : d->r1;
            if ((st = lort__diag_joint(m, 1, d->d, d->heads, d->layers, d->matrices, ranks,
                                       d->alpha, d->dropout, d->head_side, d->kv_heads)))
                return st;
            layers = d->layers;
            M = d->matrices ? d->matrices : 4;
        } else {
            const lort_cp_desc *d = &a->desc.cp;
            if ((st = lort__diag_float(m, "init_scale", d->init_scale, 0))) return st;
            ranks[0] = d->r;
            if ((st = lort__diag_joint(m, 0, d->d, d->heads, d->layers, d->matrices, ranks,
                                       d->alpha, d->dropout, d->head_side, d->kv_heads)))
                return st;
            layers = d->layers;
            M = d->matrices ? d->matrices : 4;
        }
        if (a->layer < 0 || a->layer >= layers) {
            lort__msg_str(m, "site layer ");
            lort__msg_int(m, a->layer);
            lort__msg_range(m, 0, layers);
            return LORT_ERR_INVALID_ARG;
        }
        if (a->matrix < 0 || a->matrix >= M) {
            lort__msg_str(m, "site matrix ");
            lort__msg_int(m, a->matrix);
            lort__msg_range(m, 0, M);
            return LORT_ERR_INVALID_ARG;
        }
        return LORT_OK;
    }
    case LORT_KIND_MPO: return lort__diag_mpo(m, &a->desc.mpo);
    default:
        break;
    }
    return LORT_OK;
}

LORT_DEF lort_status lort_adapter_validate(const lort_adapter *a, char *msg, size_t msg_size) {
    lort__msg m;
    lort_adapter_sizes sz;
    lort_status st, sq;
    lort__msg_init(&m, msg, msg_size);
    if (!a) {
        lort__msg_str(&m, "adapter: NULL");
        return LORT_ERR_NULL;
    }
    if (a->kind < LORT_KIND_LORA || a->kind > LORT_KIND_TT_ADP) {
        lort__msg_str(&m, "adapter: kind ");
        lort__msg_int(&m, (long long)a->kind);
        lort__msg_str(&m, " is not a lort_kind");
        return LORT_ERR_UNSUPPORTED;
    }
    st = lort__adapter_diag(&m, a);
    sq = lort_adapter_sizes_query(a, 1, &sz);
    if (sq != LORT_OK && st != sq) { /* the words missed it (a size deep in a plan): say the status */
        lort__msg_init(&m, msg, msg_size);
        lort__msg_str(&m, lort__kind_name(a->kind));
        lort__msg_str(&m, ": ");
        lort__msg_str(&m, lort_status_string(sq));
        return sq;
    }
    if (st == LORT_OK) lort__msg_init(&m, msg, msg_size);
    return st;
}

LORT__PRIVATE lort_status lort__set_check(const lort_adapter_set *set) {
    if (!set) return LORT_ERR_NULL;
    if (set->n_entries < 0 || set->n_sites < 0) return LORT_ERR_INVALID_ARG;
    if ((set->n_entries > 0 && !set->entries) || (set->n_sites > 0 && !set->sites))
        return LORT_ERR_NULL;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_site_adapter(const lort_adapter_set *set, int site,
                                           lort_adapter *out) {
    const lort_set_site *s;
    lort_status st;
    if ((st = lort__set_check(set))) return st;
    if (!out) return LORT_ERR_NULL;
    if (site < 0 || site >= set->n_sites) return LORT_ERR_INVALID_ARG;
    s = &set->sites[site];
    if (s->entry < 0 || s->entry >= set->n_entries) return LORT_ERR_INVALID_ARG;
    *out = set->entries[s->entry];
    out->layer = s->layer;
    out->matrix = s->matrix;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_find(const lort_adapter_set *set, const char *name, int *site) {
    int i;
    lort_status st;
    if ((st = lort__set_check(set))) return st;
    if (!name || !site) return LORT_ERR_NULL;
    for (i = 0; i < set->n_sites; ++i)
        if (set->sites[i].name && strcmp(set->sites[i].name, name) == 0) {
            *site = i;
            return LORT_OK;
        }
    return LORT_ERR_NOT_FOUND;
}

LORT_DEF lort_status lort_set_validate(const lort_adapter_set *set, char *msg, size_t msg_size) {
    int i, j;
    lort_status st;
    lort__msg m;
    lort__msg_init(&m, msg, msg_size);
    if ((st = lort__set_check(set))) {
        lort__msg_str(&m, "set: NULL or negative counts");
        return st;
    }
    for (i = 0; i < set->n_sites; ++i) {
        lort_adapter a;
        lort_adapter_sizes sz;
        const lort_set_site *s = &set->sites[i];
        int layers, matrices = 0;
        lort__msg_str(&m, "site ");
        lort__msg_int(&m, i);
        if (s->name) {
            lort__msg_str(&m, " (");
            lort__msg_str(&m, s->name);
            lort__msg_str(&m, ")");
        }
        lort__msg_str(&m, ": ");
        if (s->entry < 0 || s->entry >= set->n_entries) {
            lort__msg_str(&m, "entry ");
            lort__msg_int(&m, s->entry);
            lort__msg_range(&m, 0, set->n_entries);
            return LORT_ERR_INVALID_ARG;
        }
        if ((st = lort_set_site_adapter(set, i, &a))) return st;
        if (a.kind == LORT_KIND_CP || a.kind == LORT_KIND_TUCKER) {
#if LORT__HAS_CP
            lort_cp_desc c;
#endif
#if LORT__HAS_TUCKER
            lort_tucker_desc t;
#endif
#if LORT__HAS_CP /* a kind compiled out fails the size query below */
            if (a.kind == LORT_KIND_CP && lort_cp_desc_resolve(&a.desc.cp, &c) == LORT_OK)
                matrices = c.matrices;
#endif
#if LORT__HAS_TUCKER
            if (a.kind == LORT_KIND_TUCKER &&
                lort_tucker_desc_resolve(&a.desc.tucker, &t) == LORT_OK)
                matrices = t.matrices;
#endif
            layers = a.kind == LORT_KIND_CP ? a.desc.cp.layers : a.desc.tucker.layers;
            if (layers > 0 && (a.layer < 0 || a.layer >= layers)) {
                lort__msg_str(&m, "layer ");
                lort__msg_int(&m, a.layer);
                lort__msg_range(&m, 0, layers);
                return LORT_ERR_INVALID_ARG;
            }
            if (matrices > 0 && (a.matrix < 0 || a.matrix >= matrices)) {
                lort__msg_str(&m, "matrix ");
                lort__msg_int(&m, a.matrix);
                lort__msg_range(&m, 0, matrices);
                return LORT_ERR_INVALID_ARG;
            }
        }
        if ((st = lort_adapter_sizes_query(&a, 1, &sz))) {
            lort__msg_str(&m, "entry ");
            lort__msg_int(&m, s->entry);
            lort__msg_str(&m, ": ");
            /* the family's words, into the rest of the buffer */
            if (m.buf) return lort_adapter_validate(&a, m.buf + m.len, m.cap - m.len);
            return st;
        }
        for (j = 0; s->name && j < i; ++j)
            if (set->sites[j].name && strcmp(set->sites[j].name, s->name) == 0) {
                lort__msg_str(&m, "same name as site ");
                lort__msg_int(&m, j);
                return LORT_ERR_INVALID_ARG;
            }
        lort__msg_init(&m, msg, msg_size);
    }
    return LORT_OK;
}

// >>serve ================================================================================ impl

/* ---- plan ---------------------------------------------------------------------------------- */

/* n rounded up to a multiple of 16 (floats) or 64 (bytes); 0 on overflow. */
LORT__PRIVATE int lort__round16(size_t n, size_t *out) {
    if (n > LORT__SIZE_LIMIT - 15u) return 0;
    *out = (n + 15u) & ~(size_t)15u;
    return 1;
}
LORT__PRIVATE int lort__round64(size_t n, size_t *out) {
    if (n > LORT__SIZE_LIMIT - 63u) return 0;
    *out = (n + 63u) & ~(size_t)63u;
    return 1;
}
LORT__PRIVATE void lort__plan_max(lort_set_plan *p, const lort_adapter_sizes *z) {
    if (z->cache > p->cache) p->cache = z->cache;
    if (z->work > p->work) p->work = z->work;
    if (z->init_work > p->work) p->work = z->init_work;
    if (z->d_in > p->max_d_in) p->max_d_in = z->d_in;
    if (z->d_out > p->max_d_out) p->max_d_out = z->d_out;
}

LORT_DEF lort_status lort_set_plan_query(const lort_adapter_set *set, int n, lort_set_plan *plan,
                                         lort_set_plan_entry *entries, lort_adapter_sizes *sites) {
    lort_set_plan p;
    lort_status st;
    int i;
    if ((st = lort__set_check(set))) return st;
    if (!plan) return LORT_ERR_NULL;
    if (n <= 0) return LORT_ERR_INVALID_ARG;
    memset(&p, 0, sizeof(p));
    /* every site first (validates the set as lort_set_validate's range checks do) */
    for (i = 0; i < set->n_sites; ++i) {
        lort_adapter a;
        lort_adapter_sizes z;
        if ((st = lort_set_site_adapter(set, i, &a))) return st;
        if ((st = lort_adapter_sizes_query(&a, n, &z))) return st;
        if (a.kind == LORT_KIND_CP || a.kind == LORT_KIND_TUCKER) {
            int layers = a.kind == LORT_KIND_CP ? a.desc.cp.layers : a.desc.tucker.layers;
            if (a.layer < 0 || a.layer >= layers) return LORT_ERR_INVALID_ARG;
        }
        lort__plan_max(&p, &z);
    }
    for (i = 0; i < set->n_entries; ++i) {
        lort_adapter a = set->entries[i];
        lort_adapter_sizes z;
        a.layer = a.matrix = 0; /* entries' own (layer, matrix) are unused */
        if ((st = lort_adapter_sizes_query(&a, n, &z))) return st;
        lort__plan_max(&p, &z);
        if (!lort__round16(p.params, &p.params) ||
            !lort__round64(p.frozen_bytes, &p.frozen_bytes) ||
            z.params > LORT__SIZE_LIMIT / sizeof(float) - p.params ||
            z.frozen_bytes > LORT__SIZE_LIMIT - p.frozen_bytes)
            return LORT_ERR_OVERFLOW;
        p.params += z.params;
        p.frozen_bytes += z.frozen_bytes;
    }
    /* the same walk again, now that nothing can fail: the caller's arrays */
    if (entries || sites) {
        size_t po = 0, fo = 0;
        for (i = 0; entries && i < set->n_entries; ++i) {
            lort_adapter a = set->entries[i];
            lort_adapter_sizes z;
            a.layer = a.matrix = 0;
            (void)lort_adapter_sizes_query(&a, n, &z);
            (void)lort__round16(po, &po);
            (void)lort__round64(fo, &fo);
            entries[i].params_offset = po;
            entries[i].params = z.params;
            entries[i].frozen_offset = fo;
            entries[i].frozen_bytes = z.frozen_bytes;
            po += z.params;
            fo += z.frozen_bytes;
        }
        for (i = 0; sites && i < set->n_sites; ++i) {
            lort_adapter a;
            (void)lort_set_site_adapter(set, i, &a);
            (void)lort_adapter_sizes_query(&a, n, &sites[i]);
        }
    }
    *plan = p;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_bind(lort_adapter_set *set, const lort_set_plan_entry *entries,
                                   float *params_block, void *frozen_block, float *grads_block) {
    lort_status st;
    int i;
    if ((st = lort__set_check(set))) return st;
    if (set->n_entries > 0 && (!entries || !params_block)) return LORT_ERR_NULL;
    for (i = 0; i < set->n_entries; ++i)
        if (entries[i].frozen_bytes && !frozen_block) return LORT_ERR_NULL;
    for (i = 0; i < set->n_entries; ++i) {
        lort_adapter *e = &set->entries[i];
        e->params = params_block + entries[i].params_offset;
        e->frozen =
            entries[i].frozen_bytes ? (char *)frozen_block + entries[i].frozen_offset : NULL;
        e->grads = grads_block ? grads_block + entries[i].params_offset : NULL;
    }
    return LORT_OK;
}

/* ---- out-of-place merge --------------------------------------------------------------------- */

LORT_DEF lort_status lort_adapter_merge_into(const lort_adapter *a, float *W_out,
                                             const float *W_in, float weight, void *work,
                                             size_t work_size) {
    lort_adapter_sizes z;
    lort__views v;
    lort_status st;
    size_t count;
    uintptr_t o, i, bytes;
    if ((st = lort_adapter_sizes_query(a, 1, &z))) return st;
    if ((st = lort__adapter_views(a, &v))) return st;
    if (!W_out || !W_in) return LORT_ERR_NULL;
    if (a->kind == LORT_KIND_TT_ADP) return LORT_ERR_NOT_MERGEABLE;
    if (!lort__finite(weight)) return LORT_ERR_INVALID_ARG;
    if (z.work && (!work || work_size < z.work)) return work ? LORT_ERR_WORKSPACE : LORT_ERR_NULL;
    count = (size_t)z.d_out * (size_t)z.d_in;
    if (W_out != W_in) {
        o = (uintptr_t)W_out;
        i = (uintptr_t)W_in;
        bytes = (uintptr_t)(count * sizeof(float));
        if (o < i + bytes && i < o + bytes) return LORT_ERR_INVALID_ARG; /* partial overlap */
        memcpy(W_out, W_in, count * sizeof(float));
    }
    return lort_adapter_merge(a, W_out, weight, work, work_size);
}

/* ---- shared private pieces of mixed and multi ---------------------------------------------- */

/* Floats that hold `count` ints. */
LORT__PRIVATE size_t lort__int_floats(size_t count) {
    return (count * sizeof(int) + sizeof(float) - 1u) / sizeof(float);
}
/* The sizes of one adapter at n rows, with its factor pointers checked. */
LORT__PRIVATE lort_status lort__serve_sizes(const lort_adapter *a, int n, lort_adapter_sizes *z) {
    lort__views v;
    lort_status st;
    if ((st = lort_adapter_sizes_query(a, n, z))) return st;
    if ((st = lort__adapter_views(a, &v))) return st;
    return LORT_OK;
}
LORT__PRIVATE int lort__tt_adp_output(const lort_adapter *a) {
    return a->kind == LORT_KIND_TT_ADP && a->desc.tt_adp.placement == LORT_TT_ADP_OUTPUT;
}
/* loraxs adapters b can join a's shared-basis run: same frozen factors, shape, no dropout. */
LORT__PRIVATE int lort__xs_shared(const lort_adapter *a, const lort_adapter *b) {
    return a->kind == LORT_KIND_LORAXS && b->kind == LORT_KIND_LORAXS && a->frozen == b->frozen &&
           a->desc.loraxs.d_in == b->desc.loraxs.d_in &&
           a->desc.loraxs.d_out == b->desc.loraxs.d_out && a->desc.loraxs.r == b->desc.loraxs.r &&
           !(a->desc.loraxs.dropout > 0.0f) && !(b->desc.loraxs.dropout > 0.0f);
}

/* The scale s of a lora adapter (0 when lora is compiled out: no lora adapter gets here). */
LORT__PRIVATE float lort__lora_s(const lort_adapter *a) {
    float s = 0.0f;
#if LORT__HAS_LORA
    (void)lort_lora_scale(&a->desc.lora, &s);
#else
    (void)a;
#endif
    return s;
}

/* ---- mixed-adapter batches ---------------------------------------------------------------- */

enum { LORT__MX_INT, LORT__MX_XS, LORT__MX_YS, LORT__MX_H1, LORT__MX_H2, LORT__MX_WORK };
/* ints: start (n_adapters + 2: index a + 1, -1 at 0) then order (n). */
LORT__PRIVATE void lort__mixed_layout(int n_adapters, int n, int d_in, int d_out, int rmax,
                                      size_t awork, lort__layout *L) {
    size_t t = 0;
    lort__lay_init(L);
    lort__lay_add(L, lort__int_floats((size_t)n_adapters + 2u + (size_t)n));
    if (!lort__mul((size_t)n, (size_t)d_in, &t)) L->overflow = 1;
    lort__lay_add(L, t);
    if (!lort__mul((size_t)n, (size_t)d_out, &t)) L->overflow = 1;
    lort__lay_add(L, t);
    lort__lay_add(L, (size_t)n * (size_t)rmax);
    lort__lay_add(L, (size_t)n * (size_t)rmax);
    lort__lay_add(L, awork / sizeof(float) + 1u);
}

/* The rank whose H1, H2 rows the mixed workspace holds: loraxs (shared basis) and lora (small
   groups run the decode loops on their rows in place, H in the H1 slot). */
LORT__PRIVATE int lort__mixed_r(const lort_adapter *a) {
    if (a->kind == LORT_KIND_LORAXS) return a->desc.loraxs.r;
    if (a->kind == LORT_KIND_LORA) return a->desc.lora.r;
    return 0;
}
LORT_DEF lort_status lort_mixed_workspace_size(const lort_adapter *adapters, int n_adapters,
                                               int n, size_t *bytes) {
    lort__layout L;
    lort_status st;
    size_t awork = 0;
    int i, d_in = 0, d_out = 0, rmax = 0;
    if (!bytes) return LORT_ERR_NULL;
    if (n <= 0 || n_adapters < 0 || n_adapters >= INT_MAX - 2) return LORT_ERR_INVALID_ARG;
    if (n_adapters > 0 && !adapters) return LORT_ERR_NULL;
    for (i = 0; i < n_adapters; ++i) {
        lort_adapter_sizes z;
        if ((st = lort_adapter_sizes_query(&adapters[i], n, &z))) return st;
        if (i == 0) {
            d_in = z.d_in;
            d_out = z.d_out;
        } else if (z.d_in != d_in || z.d_out != d_out) {
            return LORT_ERR_SHAPE;
        }
        if (z.work > awork) awork = z.work;
        if (lort__mixed_r(&adapters[i]) > rmax) rmax = lort__mixed_r(&adapters[i]);
    }
    lort__mixed_layout(n_adapters, n, d_in, d_out, rmax, awork, &L);
    return lort__lay_bytes(&L, bytes);
}

/* H2[t] = s H1[t] R^T for the m rows t = rows[k] (rows NULL: t = first + k) of one adapter:
   r x r per row, cheaper than a GEMM call for the few rows a user has in a batch. */
LORT__PRIVATE void lort__xs_rows(const lort_adapter *a, float *H2, const float *H1,
                                 const int *rows, int first, int m, int r) {
    const float *R = a->params;
    float s = 0.0f;
    int k, i, j;
#if LORT__HAS_LORAXS
    (void)lort_loraxs_scale(&a->desc.loraxs, &s);
#endif
    for (k = 0; k < m; ++k) {
        size_t t = (size_t)(rows ? rows[k] : first + k);
        const float *h = H1 + t * (size_t)r;
        float *o = H2 + t * (size_t)r;
        for (i = 0; i < r; ++i) {
            const float *Ri = R + (size_t)i * (size_t)r;
            float acc = 0.0f;
            for (j = 0; j < r; ++j) acc += h[j] * Ri[j];
            o[i] = s * acc;
        }
    }
}

LORT_DEF lort_status lort_mixed_forward(const lort_adapter *adapters, int n_adapters, float *y,
                                        const float *x, const int *row_adapter, int n,
                                        void *work, size_t work_size) {
    lort__layout L;
    lort_status st;
    size_t awork = 0, ints;
    float *base, *xs, *ys, *H1, *H2, *aw;
    int *start, *order;
    int i, a, d_in = 0, d_out = 0, rmax = 0, used = 0, sized;
    if (n <= 0 || n_adapters < 0 || n_adapters >= INT_MAX - 2) return LORT_ERR_INVALID_ARG;
    if ((n_adapters > 0 && !adapters) || !y || !x || !row_adapter) return LORT_ERR_NULL;
    for (i = 0; i < n; ++i)
        if (row_adapter[i] < -1 || row_adapter[i] >= n_adapters) return LORT_ERR_INVALID_ARG;
    /* the counting sort needs only the int slot: check that part of the workspace first */
    lort__mixed_layout(n_adapters, n, 0, 0, 0, 0, &L);
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    base = lort__lay_base(work);
    start = (int *)(void *)lort__lay_slot(base, &L, LORT__MX_INT);
    order = start + n_adapters + 2;
    ints = (size_t)n_adapters + 2u;
    memset(start, 0, ints * sizeof(int));
    for (i = 0; i < n; ++i) start[row_adapter[i] + 2]++;             /* counts at a + 2 */
    for (a = 1; a < n_adapters + 2; ++a) start[a] += start[a - 1];     /* starts at a + 1 */
    for (i = 0; i < n; ++i) order[start[row_adapter[i] + 1]++] = i;    /* stable */
    /* now start[a + 1] is the end of segment a, start[a] its start (start[0] = 0) */
    for (a = 0, sized = -1; a < n_adapters; ++a) {
        lort_adapter_sizes z;
        if (start[a + 1] == start[a]) continue;
        if (sized >= 0 && lort__xs_shared(&adapters[sized], &adapters[a])) {
            /* a user of a basis already sized (same shape, no dropout): the sizes are the
               same, only its desc and pointers need a check (thousands of users per batch) */
            lort__views v;
            if ((st = lort__adapter_views(&adapters[a], &v))) return st;
            continue;
        }
        if ((st = lort__serve_sizes(&adapters[a], n, &z))) return st;
        sized = a;
        if (!used) {
            d_in = z.d_in;
            d_out = z.d_out;
        } else if (z.d_in != d_in || z.d_out != d_out) {
            return LORT_ERR_SHAPE;
        }
        used = 1;
        if (z.work > awork) awork = z.work;
        if (lort__mixed_r(&adapters[a]) > rmax) rmax = lort__mixed_r(&adapters[a]);
    }
    if (!used) return LORT_OK;
    if ((st = lort__rows_check(n, d_in, d_out))) return st;
    lort__mixed_layout(n_adapters, n, d_in, d_out, rmax, awork, &L);
    if ((st = lort__lay_check(&L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    xs = lort__lay_slot(base, &L, LORT__MX_XS);
    ys = lort__lay_slot(base, &L, LORT__MX_YS);
    H1 = lort__lay_slot(base, &L, LORT__MX_H1);
    H2 = lort__lay_slot(base, &L, LORT__MX_H2);
    aw = lort__lay_slot(base, &L, LORT__MX_WORK);
    awork = (size_t)((char *)base + L.end - (char *)aw);
    for (a = 0; a < n_adapters;) {
        const lort_adapter *A = &adapters[a];
        int p0 = start[a], m = start[a + 1] - start[a], k;
        const int *rows = order + p0;
        if (!m) {
            ++a;
            continue;
        }
        if (A->kind == LORT_KIND_LORAXS && !(A->desc.loraxs.dropout > 0.0f)) {
            /* shared-basis run: the following used adapters with the same basis */
            int b = a + 1, p1, all, r = A->desc.loraxs.r, c;
            const float *FA = (const float *)A->frozen, *FB = FA + (size_t)r * (size_t)d_in;
            while (b < n_adapters && (start[b + 1] == start[b] || lort__xs_shared(A, &adapters[b])))
                ++b;
            p1 = start[b];
            m = p1 - p0;
            all = m == n;
            if (all) { /* in place, rows in their own order: H1 = x A^T, y += H2 B^T */
                lort__gemm(0, 1, n, r, d_in, 1.0f, x, d_in, FA, d_in, 0.0f, H1, r);
                for (c = a; c < b; ++c)
                    lort__xs_rows(&adapters[c], H2, H1, order + start[c], 0,
                                  start[c + 1] - start[c], r);
                lort__gemm(0, 1, n, d_out, r, 1.0f, H2, r, FB, r, 1.0f, y, d_out);
            } else { /* gathered: position k of the run holds row order[p0 + k] */
                for (k = 0; k < m; ++k)
                    memcpy(xs + (size_t)k * (size_t)d_in, x + (size_t)rows[k] * (size_t)d_in,
                           (size_t)d_in * sizeof(float));
                lort__gemm(0, 1, m, r, d_in, 1.0f, xs, d_in, FA, d_in, 0.0f, H1, r);
                for (c = a; c < b; ++c) /* rows of adapter c sit at positions start[c] - p0.. */
                    lort__xs_rows(&adapters[c], H2, H1, NULL, start[c] - p0,
                                  start[c + 1] - start[c], r);
                lort__gemm(0, 1, m, d_out, r, 1.0f, H2, r, FB, r, 0.0f, ys, d_out);
                for (k = 0; k < m; ++k)
                    lort__axpy(y + (size_t)rows[k] * (size_t)d_out, 1.0f,
                               ys + (size_t)k * (size_t)d_out, (size_t)d_out);
            }
            a = b;
            continue;
        }
#if LORT__HAS_LORA
        if (A->kind == LORT_KIND_LORA && !(A->desc.lora.dropout > 0.0f) &&
            lort__decode_use(m, A->desc.lora.r)) {
            /* a few rows of one lora adapter: the decode loops on those rows where they are */
            const lort_lora_desc *dl = &A->desc.lora;
            lort__decode_rows(d_in, d_out, dl->r, lort__lora_s(A), y, x, rows, NULL, A->params,
                              A->params + (size_t)dl->r * (size_t)d_in, m, H1, NULL, 0, 0);
            ++a;
            continue;
        }
#endif
        if (rows[m - 1] - rows[0] == m - 1) { /* consecutive rows: in place */
            float *yr = y + (size_t)rows[0] * (size_t)d_out;
            const float *xr = lort__tt_adp_output(A) ? NULL : x + (size_t)rows[0] * (size_t)d_in;
            st = lort_adapter_forward(A, yr, xr, m, NULL, 0, aw, awork);
        } else {
            int out = lort__tt_adp_output(A);
            for (k = 0; k < m; ++k) {
                memcpy(xs + (size_t)k * (size_t)d_in, x + (size_t)rows[k] * (size_t)d_in,
                       (size_t)d_in * sizeof(float));
                if (out)
                    memcpy(ys + (size_t)k * (size_t)d_out, y + (size_t)rows[k] * (size_t)d_out,
                           (size_t)d_out * sizeof(float));
            }
            if (!out) memset(ys, 0, (size_t)m * (size_t)d_out * sizeof(float));
            st = lort_adapter_forward(A, ys, out ? NULL : xs, m, NULL, 0, aw, awork);
            for (k = 0; st == LORT_OK && k < m; ++k) {
                float *yr = y + (size_t)rows[k] * (size_t)d_out;
                const float *s = ys + (size_t)k * (size_t)d_out;
                if (out) memcpy(yr, s, (size_t)d_out * sizeof(float));
                else lort__axpy(yr, 1.0f, s, (size_t)d_out);
            }
        }
        if (st) return st;
        ++a;
    }
    return LORT_OK;
}

/* ---- one call for the sites that share an input --------------------------------------------- */

enum { LORT__MU_ACAT, LORT__MU_H, LORT__MU_G, LORT__MU_U, LORT__MU_WORK };
/* lora sites without dropout are stacked when there are two and n >= LORT__MULTI_STACK_ROWS:
   below, copying the A factors costs more than one GEMM instead of several saves (measured at
   d 1024, r 16: 0.8x at n = 16, 1.1x at n = 512); at decode sizes each site runs the fused
   loops directly. */
#define LORT__MULTI_STACK_ROWS 64
LORT__PRIVATE int lort__multi_stackable(const lort_adapter *a) {
    return a->kind == LORT_KIND_LORA && !(a->desc.lora.dropout > 0.0f);
}
/* cp / tucker site with heads on the output, no dropout: U = x A is the same for every site
   of the block. */
LORT__PRIVATE int lort__multi_joint(const lort_adapter *a) {
    if (a->kind == LORT_KIND_CP)
        return a->desc.cp.head_side == LORT_CP_HEADS_OUT && !(a->desc.cp.dropout > 0.0f);
    if (a->kind == LORT_KIND_TUCKER)
        return a->desc.tucker.head_side == LORT_CP_HEADS_OUT && !(a->desc.tucker.dropout > 0.0f);
    return 0;
}
LORT__PRIVATE int lort__same_block(const lort_adapter *a, const lort_adapter *b) {
    if (a->kind != b->kind || a->params != b->params) return 0;
    return a->kind == LORT_KIND_CP ? memcmp(&a->desc.cp, &b->desc.cp, sizeof(a->desc.cp)) == 0
                                   : memcmp(&a->desc.tucker, &b->desc.tucker,
                                            sizeof(a->desc.tucker)) == 0;
}
/* Joint sites (heads out) sharing U = x A: the site's forward with U already in the cache, and
   U itself for backward's cache. */
LORT__PRIVATE lort_status lort__joint_forward_u(const lort_adapter *a, float *y, const float *x,
                                                int n, float *U, size_t usize, float *aw,
                                                size_t awork) {
#if LORT__HAS_JOINT
    lort__joint J;
    lort_status st = LORT_ERR_UNSUPPORTED;
#if LORT__HAS_CP
    if (a->kind == LORT_KIND_CP) st = lort__cp_joint(&a->desc.cp, &J);
#endif
#if LORT__HAS_TUCKER
    if (a->kind == LORT_KIND_TUCKER) st = lort__tucker_joint(&a->desc.tucker, &J);
#endif
    if (st) return st;
    J.u_ready = 1; /* U = x A of this block is in the U slot */
    return lort__joint_forward(&J, y, x, a->params, a->layer, a->matrix, n, U, usize, aw, awork);
#else
    (void)a; (void)y; (void)x; (void)n; (void)U; (void)usize; (void)aw; (void)awork;
    return LORT_ERR_UNSUPPORTED;
#endif
}
LORT__PRIVATE lort_status lort__joint_u(const lort_adapter *a, const float *x, int n, float *U) {
#if LORT__HAS_JOINT
    lort__joint J;
    lort_status st = LORT_ERR_UNSUPPORTED;
#if LORT__HAS_CP
    if (a->kind == LORT_KIND_CP) st = lort__cp_joint(&a->desc.cp, &J);
#endif
#if LORT__HAS_TUCKER
    if (a->kind == LORT_KIND_TUCKER) st = lort__tucker_joint(&a->desc.tucker, &J);
#endif
    if (st) return st;
    lort__gemm(0, 0, n, J.r1, J.d, 1.0f, x, J.d, a->params + J.oA, J.r1, 0.0f, lort__lay_base(U),
               J.r1);
    return LORT_OK;
#else
    (void)a; (void)x; (void)n; (void)U;
    return LORT_ERR_UNSUPPORTED;
#endif
}
typedef struct lort__multi {
    int d_in, rsum, stack, ucache_floats;
    size_t awork, ucache;
    lort__layout L;
} lort__multi;
LORT__PRIVATE lort_status lort__multi_plan(const lort_adapter *ad, int count, int n,
                                           lort__multi *M) {
    lort_status st;
    size_t t = 0, ra = 0;
    int i, nstack = 0;
    memset(M, 0, sizeof(*M));
    if (count <= 0 || n <= 0) return LORT_ERR_INVALID_ARG;
    if (!ad) return LORT_ERR_NULL;
    for (i = 0; i < count; ++i) {
        lort_adapter_sizes z;
        if ((st = lort__serve_sizes(&ad[i], n, &z))) return st;
        if (i == 0) M->d_in = z.d_in;
        else if (z.d_in != M->d_in) return LORT_ERR_SHAPE;
        if (z.work > M->awork) M->awork = z.work;
        if (lort__multi_joint(&ad[i]) && z.cache > M->ucache) M->ucache = z.cache;
        if (lort__multi_stackable(&ad[i])) {
            nstack++;
            ra += (size_t)ad[i].desc.lora.r;
        }
    }
    M->stack = n >= LORT__MULTI_STACK_ROWS && nstack >= 2;
    if (!M->stack) ra = 0;
    if (ra > (size_t)INT_MAX) return LORT_ERR_OVERFLOW;
    M->rsum = (int)ra;
    lort__lay_init(&M->L);
    if (!lort__mul(ra, (size_t)M->d_in, &t)) M->L.overflow = 1;
    lort__lay_add(&M->L, t);
    if (!lort__mul(ra, (size_t)n, &t)) M->L.overflow = 1;
    lort__lay_add(&M->L, t);
    lort__lay_add(&M->L, t);
    lort__lay_add(&M->L, M->ucache ? M->ucache / sizeof(float) + 1u : 0);
    lort__lay_add(&M->L, M->awork / sizeof(float) + 1u);
    return LORT_OK;
}

LORT_DEF lort_status lort_multi_workspace_size(const lort_adapter *adapters, int count, int n,
                                               size_t *bytes) {
    lort__multi M;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__multi_plan(adapters, count, n, &M))) return st;
    return lort__lay_bytes(&M.L, bytes);
}

/* The stacked A factors of the lora sites, Acat (rsum, d_in). */
LORT__PRIVATE void lort__multi_stack(const lort_adapter *ad, int count, const lort__multi *M,
                                     float *Acat) {
    size_t off = 0;
    int i;
    for (i = 0; i < count; ++i)
        if (lort__multi_stackable(&ad[i])) {
            size_t na = (size_t)ad[i].desc.lora.r * (size_t)M->d_in;
            memcpy(Acat + off, ad[i].params, na * sizeof(float));
            off += na;
        }
}

LORT_DEF lort_status lort_multi_forward(const lort_adapter *adapters, int count, float *const *y,
                                        const float *x, int n, void *work, size_t work_size) {
    lort__multi M;
    lort_status st;
    float *base, *Acat, *H, *U, *aw;
    size_t awork;
    int i, off = 0, u_owner = -1;
    if ((st = lort__multi_plan(adapters, count, n, &M))) return st;
    if (!y || !x) return LORT_ERR_NULL;
    for (i = 0; i < count; ++i)
        if (!y[i]) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&M.L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    base = lort__lay_base(work);
    Acat = lort__lay_slot(base, &M.L, LORT__MU_ACAT);
    H = lort__lay_slot(base, &M.L, LORT__MU_H);
    U = lort__lay_slot(base, &M.L, LORT__MU_U);
    aw = lort__lay_slot(base, &M.L, LORT__MU_WORK);
    awork = (size_t)((char *)base + M.L.end - (char *)aw);
    if (M.stack) { /* H = x [A_0; A_1; ...]^T, one GEMM */
        lort__multi_stack(adapters, count, &M, Acat);
        lort__gemm(0, 1, n, M.rsum, M.d_in, 1.0f, x, M.d_in, Acat, M.d_in, 0.0f, H, M.rsum);
    }
    for (i = 0; i < count; ++i) {
        const lort_adapter *a = &adapters[i];
        if (M.stack && lort__multi_stackable(a)) { /* y_i += s_i H_i B_i^T */
            const lort_lora_desc *d = &a->desc.lora;
            float s = lort__lora_s(a);
            lort__gemm(0, 1, n, d->d_out, d->r, s, H + off, M.rsum,
                       a->params + (size_t)d->r * (size_t)d->d_in, d->r, 1.0f, y[i], d->d_out);
            off += d->r;
#if LORT__HAS_LORA
        } else if (lort__multi_stackable(a) && lort__decode_use(n, a->desc.lora.r)) {
            /* decode: the fused loops straight away (the plan validated the site; H in aw,
               which holds lora's workspace at n rows) */
            const lort_lora_desc *d = &a->desc.lora;
            lort__decode_rows(d->d_in, d->d_out, d->r, lort__lora_s(a), y[i], x, NULL, NULL,
                              a->params, a->params + (size_t)d->r * (size_t)d->d_in, n, aw, NULL,
                              0, 0);
#endif
        } else if (lort__multi_joint(a) && u_owner >= 0 &&
                   lort__same_block(&adapters[u_owner], a)) {
            st = lort__joint_forward_u(a, y[i], x, n, U, M.ucache, aw, awork);
        } else if (lort__multi_joint(a)) { /* the block's first site leaves U in the U slot */
            st = lort_adapter_forward(a, y[i], x, n, U, M.ucache, aw, awork);
            u_owner = i;
        } else {
            st = lort_adapter_forward(a, y[i], x, n, NULL, 0, aw, awork);
        }
        if (st) return st;
    }
    return LORT_OK;
}

LORT_DEF lort_status lort_multi_backward(const lort_adapter *adapters, int count, float *dx,
                                         const float *const *dy, const float *x, int n,
                                         void *work, size_t work_size) {
    lort__multi M;
    lort_status st;
    float *base, *Acat, *H, *G, *U, *aw;
    size_t awork;
    int i, off = 0, u_owner = -1;
    if ((st = lort__multi_plan(adapters, count, n, &M))) return st;
    if (!dy || !x) return LORT_ERR_NULL;
    for (i = 0; i < count; ++i)
        if (!dy[i]) return LORT_ERR_NULL;
    if ((st = lort__lay_check(&M.L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    base = lort__lay_base(work);
    Acat = lort__lay_slot(base, &M.L, LORT__MU_ACAT);
    H = lort__lay_slot(base, &M.L, LORT__MU_H);
    G = lort__lay_slot(base, &M.L, LORT__MU_G);
    U = lort__lay_slot(base, &M.L, LORT__MU_U);
    aw = lort__lay_slot(base, &M.L, LORT__MU_WORK);
    awork = (size_t)((char *)base + M.L.end - (char *)aw);
    if (M.stack) {
        lort__multi_stack(adapters, count, &M, Acat);
        lort__gemm(0, 1, n, M.rsum, M.d_in, 1.0f, x, M.d_in, Acat, M.d_in, 0.0f, H, M.rsum);
    }
    for (i = 0; i < count; ++i) {
        const lort_adapter *a = &adapters[i];
        if (M.stack && lort__multi_stackable(a)) {
            const lort_lora_desc *d = &a->desc.lora;
            const float *B = a->params + (size_t)d->r * (size_t)d->d_in;
            float s = lort__lora_s(a);
            /* G_i = s dy_i B_i into columns off.. of G (n, rsum) */
            lort__gemm(0, 0, n, d->r, d->d_out, s, dy[i], d->d_out, B, d->r, 0.0f, G + off,
                       M.rsum);
            if (a->grads) {
                float *dA = a->grads, *dB = a->grads + (size_t)d->r * (size_t)d->d_in;
                lort__gemm(1, 0, d->d_out, d->r, n, s, dy[i], d->d_out, H + off, M.rsum, 1.0f,
                           dB, d->r);                                          /* += s dy^T H */
                lort__gemm(1, 0, d->r, d->d_in, n, 1.0f, G + off, M.rsum, x, d->d_in, 1.0f, dA,
                           d->d_in);                                           /* += G^T x */
            }
            off += d->r;
            continue;
        }
        if (lort__multi_joint(a)) { /* U = x A once per block, given to backward as its cache */
            if (u_owner < 0 || !lort__same_block(&adapters[u_owner], a)) {
                if ((st = lort__joint_u(a, x, n, U))) return st;
                u_owner = i;
            }
            st = lort_adapter_backward(a, dx, dy[i], x, n, U, M.ucache, aw, awork);
        } else {
            st = lort_adapter_backward(a, dx, dy[i], x, n, NULL, 0, aw, awork);
        }
        if (st) return st;
    }
    if (M.stack && dx) /* dx += [G_0 | G_1 | ...] [A_0; A_1; ...], one GEMM */
        lort__gemm(0, 0, n, M.d_in, M.rsum, 1.0f, G, M.rsum, Acat, M.d_in, 1.0f, dx, M.d_in);
    return LORT_OK;
}

/* The site prefix of set messages: "site i (name): ". */
LORT__PRIVATE void lort__msg_site(lort__msg *m, const lort_adapter_set *set, int i) {
    lort__msg_str(m, "site ");
    lort__msg_int(m, i);
    if (set->sites[i].name) {
        lort__msg_str(m, " (");
        lort__msg_str(m, set->sites[i].name);
        lort__msg_str(m, ")");
    }
    lort__msg_str(m, ": ");
}
// >>export =============================================================================== impl

#if LORT__HAS_SVD

/* Export to LoRA. Per site, dW = s P Q with P (d_out, k), Q (k, d_in):
     lora     P = B,            Q = A              k = r
     loraxs   P = B,            Q = R A            k = r
     tt_rep   P = W_B^T,        Q = W_A^T          k = r
     cp/tucker heads out: P = Bk^T, Q = A^T; heads in: P = A, Q = Bk     k = r1
   Thin route (k <= min(d_in, d_out)): Householder QR of the k columns of P and the k rows of
   Q, P = Q1^T R1 and Q = R2^T Q2 (Q1 (k, d_out), Q2 (k, d_in) orthonormal rows), then
   M = R1 R2^T (k, k) = sum_i S_i u_i p_i^T by one-sided Jacobi in double, so
   dW = s sum_i S_i (Q1^T u_i)(Q2^T p_i)^T is an exact SVD of dW: truncating it at r is the
   Eckart-Young optimum and the relative error is sqrt(sum_{i >= r} S_i^2 / sum_i S_i^2).
   Dense route (mpo; k > min(d_in, d_out)): dW by the family's delta, lort_svd_truncated, and
   the error measured on the residual dW - B A. mpo with a residual: dW = M + W_res - W0, M by
   the delta of the cores alone, then row by row (an NF4 row dequantised into slot ROW) the sum
   in double, rounded once. The LoRA: B = U sqrt(|s| S) (sign of s in B),
   A = sqrt(|s| S) V^T, alpha = r, rslora 0 (so its scale is 1). */
/* sum of squares in double */
LORT__PRIVATE double lort__export_sumsq(const float *x, size_t count) {
    double acc = 0.0;
    size_t i;
    for (i = 0; i < count; ++i) acc += (double)x[i] * (double)x[i];
    return acc;
}
enum { LORT__EX_FAM, LORT__EX_X1, LORT__EX_Q1, LORT__EX_R1, LORT__EX_X2, LORT__EX_Q2,
       LORT__EX_R2, LORT__EX_TAU, LORT__EX_T, LORT__EX_P, LORT__EX_U, LORT__EX_S, LORT__EX_ORD };
enum { LORT__EXD_FAM, LORT__EXD_DW, LORT__EXD_U, LORT__EXD_S, LORT__EXD_VT, LORT__EXD_ROW,
       LORT__EXD_SVD };

typedef struct lort__export_plan {
    int dense, d_in, d_out, k, r; /* r: the output rank, min(r, d_in, d_out) */
    int res;                      /* mpo: its lort_mpo_residual (dW relative to W0 if not NONE) */
    float s;
    lort_svd_opts svd;
    lort__layout L;
} lort__export_plan;

#if LORT__HAS_JOINT
/* The joint engine of a cp / tucker adapter at its site. */
LORT__PRIVATE lort_status lort__export_joint(const lort_adapter *a, lort__joint *J) {
    lort_status st = LORT_ERR_UNSUPPORTED;
#if LORT__HAS_CP
    if (a->kind == LORT_KIND_CP) st = lort__cp_joint(&a->desc.cp, J);
#endif
#if LORT__HAS_TUCKER
    if (a->kind == LORT_KIND_TUCKER) st = lort__tucker_joint(&a->desc.tucker, J);
#endif
    return st ? st : lort__joint_site(J, a->layer, a->matrix);
}
#endif

LORT__PRIVATE lort_status lort__export_plan_make(const lort_adapter *a, int r,
                                                 const lort_svd_opts *opts,
                                                 lort__export_plan *E) {
    lort_adapter_sizes sz;
    lort_status st;
    size_t kk, fam, t;
    int mn;
    memset(E, 0, sizeof(*E));
    if (!a) return LORT_ERR_NULL;
    if ((st = lort_adapter_sizes_query(a, 1, &sz))) return st;
    if (r <= 0) return LORT_ERR_INVALID_ARG;
    if (opts) E->svd = *opts;
    if (E->svd.oversample < 0 || E->svd.max_sweeps < 0) return LORT_ERR_INVALID_ARG;
    E->d_in = sz.d_in;
    E->d_out = sz.d_out;
    mn = sz.d_in < sz.d_out ? sz.d_in : sz.d_out;
    E->r = r < mn ? r : mn;
    fam = sz.work;
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        E->k = a->desc.lora.r;
        st = lort_lora_scale(&a->desc.lora, &E->s);
        fam = 0;
        break;
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        E->k = a->desc.loraxs.r;
        st = lort_loraxs_scale(&a->desc.loraxs, &E->s);
        fam = 0;
        break;
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP: {
        lort_tt_rep_desc o;
        size_t wa = 0, wb = 0;
        E->k = a->desc.tt_rep.r;
        if ((st = lort_tt_rep_desc_resolve(&a->desc.tt_rep, &o)) ||
            (st = lort_tt_workspace_size(&o.A, 1, &wa)) || (st = lort_tt_workspace_size(&o.B, 1, &wb)))
            return st;
        fam = wa > wb ? wa : wb;
        st = lort_tt_rep_scale(&a->desc.tt_rep, &E->s);
        break;
    }
#endif
#if LORT__HAS_JOINT
    case LORT_KIND_CP:
    case LORT_KIND_TUCKER: {
        lort__joint J;
        if ((st = lort__export_joint(a, &J))) return st;
        E->k = J.r1;
        E->s = J.s;
        break;
    }
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO:
        E->dense = 1;
        E->res = a->desc.mpo.residual;
        if (E->res != LORT_MPO_RESIDUAL_NONE) { /* the workspace of the cores' delta alone */
            lort_adapter m = *a;
            lort_adapter_sizes mz;
            m.desc.mpo.residual = LORT_MPO_RESIDUAL_NONE;
            m.frozen = NULL;
            if ((st = lort_adapter_sizes_query(&m, 1, &mz))) return st;
            if (mz.work > fam) fam = mz.work;
        }
        break;
#endif
    case LORT_KIND_TT_ADP: return LORT_ERR_NOT_MERGEABLE;
    default: return LORT_ERR_UNSUPPORTED;
    }
    if (st) return st;
    if (E->k > mn) E->dense = 1;
    lort__lay_init(&E->L);
    lort__lay_add(&E->L, (fam + sizeof(float) - 1) / sizeof(float));
    if (E->dense) {
        size_t sv = 0, dw = 0, u = 0, v = 0;
        if ((st = lort_svd_truncated_workspace_size(E->d_out, E->d_in, E->r, &E->svd, &sv)))
            return st;
        if (!lort__mul((size_t)E->d_out, (size_t)E->d_in, &dw) ||
            !lort__mul((size_t)E->d_out, (size_t)E->r, &u) ||
            !lort__mul((size_t)E->r, (size_t)E->d_in, &v))
            return LORT_ERR_OVERFLOW;
        lort__lay_add(&E->L, dw);
        lort__lay_add(&E->L, u);
        lort__lay_add(&E->L, (size_t)E->r);
        lort__lay_add(&E->L, v);
        lort__lay_add(&E->L, E->res == LORT_MPO_RESIDUAL_NF4 ? (size_t)E->d_in : 0);
        lort__lay_add(&E->L, (sv + sizeof(float) - 1) / sizeof(float));
    } else {
        size_t ko = (size_t)E->k * (size_t)E->d_out, ki = (size_t)E->k * (size_t)E->d_in;
        kk = (size_t)E->k * (size_t)E->k;
        if (!lort__mul(kk, 2, &t)) return LORT_ERR_OVERFLOW;
        lort__lay_add(&E->L, ko);                  /* X1 = P^T, then U as float */
        lort__lay_add(&E->L, ko);                  /* Q1 */
        lort__lay_add(&E->L, kk);                  /* R1 */
        lort__lay_add(&E->L, ki);                  /* X2 = Q, then P as float */
        lort__lay_add(&E->L, ki);                  /* Q2 (tt_rep: W_A first) */
        lort__lay_add(&E->L, kk);                  /* R2 */
        lort__lay_add(&E->L, (size_t)E->k);        /* tau */
        lort__lay_add(&E->L, t);                   /* T (double) */
        lort__lay_add(&E->L, t);                   /* P (double) */
        lort__lay_add(&E->L, t);                   /* U (double) */
        lort__lay_add(&E->L, 2 * (size_t)E->k);    /* S (double) */
        lort__lay_add(&E->L, (size_t)E->k);        /* order (int) */
    }
    return E->L.overflow ? LORT_ERR_OVERFLOW : LORT_OK;
}

LORT__PRIVATE void lort__export_desc(const lort__export_plan *E, lort_lora_desc *lora) {
    memset(lora, 0, sizeof(*lora));
    lora->d_in = E->d_in;
    lora->d_out = E->d_out;
    lora->r = E->r;
    lora->alpha = (float)E->r;
}

LORT_DEF lort_status lort_adapter_to_lora_size(const lort_adapter *a, int r,
                                               const lort_svd_opts *opts, lort_lora_desc *lora,
                                               size_t *work_bytes) {
    lort__export_plan E;
    lort_status st;
    size_t b;
    if (!lora || !work_bytes) return LORT_ERR_NULL;
    if ((st = lort__export_plan_make(a, r, opts, &E)) || (st = lort__lay_bytes(&E.L, &b)))
        return st;
    lort__export_desc(&E, lora);
    *work_bytes = b;
    return LORT_OK;
}

/* B (d_out, r) columns and A (r, d_in) rows i < n scaled by sqrt(|s| S_i) (B also by sign s);
   the rest zero. */
LORT__PRIVATE void lort__export_scale(const lort__export_plan *E, float *A, float *B,
                                      const double *S, int n) {
    int i, j;
    for (i = 0; i < E->r; ++i) {
        double g = i < n && S[i] > 0.0 ? sqrt(fabs((double)E->s) * S[i]) : 0.0;
        float ga = (float)g, gb = E->s < 0.0f ? -ga : ga;
        float *ar = A + (size_t)i * (size_t)E->d_in;
        for (j = 0; j < E->d_in; ++j) ar[j] = i < n ? ar[j] * ga : 0.0f;
        for (j = 0; j < E->d_out; ++j) {
            float *b = B + (size_t)j * (size_t)E->r + (size_t)i;
            *b = i < n ? *b * gb : 0.0f;
        }
    }
}

#if LORT__HAS_MPO
/* dW (d_out, d_in) = M + W_res - W0 for an mpo with a residual (slot ROW: an NF4 row). */
LORT__PRIVATE lort_status lort__export_mpo_res(const lort_adapter *a, const lort__export_plan *E,
                                               float *dW, const float *W0, float *row,
                                               float *fam, size_t fam_bytes) {
    lort_adapter m = *a;
    size_t di = (size_t)E->d_in, nb = ((size_t)E->d_out * di + LORT_NF4_BLOCK - 1) / LORT_NF4_BLOCK;
    size_t o, j;
    lort_status st;
    m.desc.mpo.residual = LORT_MPO_RESIDUAL_NONE;
    m.frozen = NULL;
    if ((st = lort_adapter_delta(&m, dW, fam, fam_bytes))) return st; /* M */
    for (o = 0; o < (size_t)E->d_out; ++o) {
        const float *res = (const float *)a->frozen + o * di;
        float *d = dW + o * di;
        const float *w = W0 + o * di;
        if (E->res == LORT_MPO_RESIDUAL_NF4) {
            lort__nf4_deq(row, (const unsigned char *)a->frozen, nb, o * di, di);
            res = row;
        }
        for (j = 0; j < di; ++j) d[j] = (float)((double)d[j] + (double)res[j] - (double)w[j]);
    }
    return LORT_OK;
}
#endif

LORT__PRIVATE lort_status lort__export_dense(const lort_adapter *a, const lort__export_plan *E,
                                             float *A, float *B, float *rel_err,
                                             const float *W0, float *base) {
    const lort__layout *L = &E->L;
    float *fam = lort__lay_slot(base, L, LORT__EXD_FAM), *dW = lort__lay_slot(base, L, LORT__EXD_DW);
    float *U = lort__lay_slot(base, L, LORT__EXD_U), *S = lort__lay_slot(base, L, LORT__EXD_S);
    float *Vt = lort__lay_slot(base, L, LORT__EXD_VT);
    size_t fb = L->off[LORT__EXD_DW] - L->off[LORT__EXD_FAM], sb, n = (size_t)E->d_out * (size_t)E->d_in;
    double total, resid;
    lort_status st;
    int i, j;
#if LORT__HAS_MPO
    if (E->res != LORT_MPO_RESIDUAL_NONE)
        st = lort__export_mpo_res(a, E, dW, W0, lort__lay_slot(base, L, LORT__EXD_ROW), fam, fb);
    else
#endif
        st = lort_adapter_delta(a, dW, fam, fb);
    (void)W0;
    if (st) return st;
    total = lort__export_sumsq(dW, n);
    if (!(total < HUGE_VAL)) return LORT_ERR_NONFINITE;
    sb = E->L.end - L->off[LORT__EXD_SVD];
    if ((st = lort_svd_truncated(U, S, Vt, dW, E->d_in, E->d_out, E->d_in, E->r, &E->svd,
                                 lort__lay_slot(base, L, LORT__EXD_SVD), sb)))
        return st;
    /* B = U sqrt(S), A = sqrt(S) Vt */
    for (i = 0; i < E->r; ++i) {
        float g = sqrtf(S[i] > 0.0f ? S[i] : 0.0f);
        for (j = 0; j < E->d_in; ++j) A[(size_t)i * (size_t)E->d_in + (size_t)j] = g * Vt[(size_t)i * (size_t)E->d_in + (size_t)j];
        for (j = 0; j < E->d_out; ++j) B[(size_t)j * (size_t)E->r + (size_t)i] = g * U[(size_t)j * (size_t)E->r + (size_t)i];
    }
    lort__gemm(0, 0, E->d_out, E->d_in, E->r, -1.0f, B, E->r, A, E->d_in, 1.0f, dW, E->d_in);
    resid = lort__export_sumsq(dW, n);
    if (rel_err) *rel_err = total > 0.0 ? (float)sqrt(resid / total) : 0.0f;
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__export_thin(const lort_adapter *a, const lort__export_plan *E,
                                            float *A, float *B, float *rel_err, float *base) {
    const lort__layout *L = &E->L;
    int k = E->k, d_in = E->d_in, d_out = E->d_out, i, j, l, n;
    size_t K = (size_t)k;
    float *fam = lort__lay_slot(base, L, LORT__EX_FAM);
    float *X1 = lort__lay_slot(base, L, LORT__EX_X1), *Q1 = lort__lay_slot(base, L, LORT__EX_Q1);
    float *R1 = lort__lay_slot(base, L, LORT__EX_R1), *X2 = lort__lay_slot(base, L, LORT__EX_X2);
    float *Q2 = lort__lay_slot(base, L, LORT__EX_Q2), *R2 = lort__lay_slot(base, L, LORT__EX_R2);
    float *tau = lort__lay_slot(base, L, LORT__EX_TAU);
    double *T = (double *)(void *)lort__lay_slot(base, L, LORT__EX_T);
    double *P = (double *)(void *)lort__lay_slot(base, L, LORT__EX_P);
    double *U = (double *)(void *)lort__lay_slot(base, L, LORT__EX_U);
    double *S = (double *)(void *)lort__lay_slot(base, L, LORT__EX_S);
    int *order = (int *)(void *)lort__lay_slot(base, L, LORT__EX_ORD);
    size_t fb = L->off[LORT__EX_X1];
    double total = 0.0, tail = 0.0;
    lort_status st;
    (void)fam;
    (void)fb;
    /* X1 = P^T (k, d_out), X2 = Q (k, d_in) */
    switch (a->kind) {
#if LORT__HAS_LORA
    case LORT_KIND_LORA:
        lort__transpose(X1, a->params + K * (size_t)d_in, (size_t)d_out, K);
        memcpy(X2, a->params, K * (size_t)d_in * sizeof(float));
        break;
#endif
#if LORT__HAS_LORAXS
    case LORT_KIND_LORAXS:
        lort__transpose(X1, (const float *)a->frozen + K * (size_t)d_in, (size_t)d_out, K);
        lort__gemm(0, 0, k, d_in, k, 1.0f, a->params, k, (const float *)a->frozen, d_in, 0.0f, X2,
                   d_in);
        break;
#endif
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP: {
        lort_tt_rep_desc o;
        size_t na = 0;
        (void)lort_tt_rep_desc_resolve(&a->desc.tt_rep, &o);
        (void)lort_tt_param_count(&o.A, &na);
        if ((st = lort_tt_to_dense(&o.B, X1, a->params + na, fam, fb)) ||   /* W_B (r, d_out) */
            (st = lort_tt_to_dense(&o.A, Q2, a->params, fam, fb)))          /* W_A (d_in, r) */
            return st;
        lort__transpose(X2, Q2, (size_t)d_in, K);
        break;
    }
#endif
#if LORT__HAS_JOINT
    case LORT_KIND_CP:
    case LORT_KIND_TUCKER: {
        lort__joint J;
        lort__layout w, c;
        const float *Bk, *Af = a->params;
        (void)lort__export_joint(a, &J);
        (void)lort__joint_layout(&J, 1, &w, &c);
        lort__joint_bk(&J, a->params, fam, &w);
        Bk = lort__lay_slot(fam, &w, LORT__JT_BK);
        Af = a->params + J.oA; /* A (d, r1) */
        if (J.heads_in) { /* dW = s A Bk: P = A, Q = Bk (r1, d) */
            lort__transpose(X1, Af, (size_t)J.d, K);
            memcpy(X2, Bk, K * (size_t)d_in * sizeof(float));
        } else { /* dW = s Bk^T A^T: P = Bk^T, Q = A^T */
            memcpy(X1, Bk, K * (size_t)d_out * sizeof(float));
            lort__transpose(X2, Af, (size_t)J.d, K);
        }
        break;
    }
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
    if (!lort__all_finite(X1, K * (size_t)d_out) || !lort__all_finite(X2, K * (size_t)d_in))
        return LORT_ERR_NONFINITE;
    lort__rowqr(k, d_out, X1, R1, Q1, tau); /* P = Q1^T R1 */
    lort__rowqr(k, d_in, X2, R2, Q2, tau);  /* Q = R2^T Q2 */
    /* T = M^T, M = R1 R2^T: T[i][j] = sum_l R2[i][l] R1[j][l] (both upper triangular) */
    for (i = 0; i < k; ++i)
        for (j = 0; j < k; ++j) {
            double acc = 0.0;
            for (l = i > j ? i : j; l < k; ++l)
                acc += (double)R2[(size_t)i * K + (size_t)l] * (double)R1[(size_t)j * K + (size_t)l];
            T[(size_t)i * K + (size_t)j] = acc;
        }
    if ((st = lort__jacobi(k, T, P, U, S, order, E->svd.max_sweeps ? E->svd.max_sweeps : 60)))
        return st;
    n = E->r < k ? E->r : k;
    for (i = 0; i < k; ++i) {
        total += S[i] * S[i];
        if (i >= n) tail += S[i] * S[i];
    }
    /* U (k, k) and P (k, k) as floats, into the dead X1 and X2 */
    for (i = 0; i < n; ++i)
        for (j = 0; j < k; ++j) {
            X1[(size_t)i * K + (size_t)j] = (float)U[(size_t)i * K + (size_t)j];
            X2[(size_t)i * K + (size_t)j] = (float)P[(size_t)i * K + (size_t)j];
        }
    /* B (d_out, n) = Q1^T u_i, A (n, d_in) = p_i^T Q2 */
    lort__gemm(1, 1, d_out, n, k, 1.0f, Q1, d_out, X1, k, 0.0f, B, E->r);
    lort__gemm(0, 0, n, d_in, k, 1.0f, X2, k, Q2, d_in, 0.0f, A, d_in);
    lort__export_scale(E, A, B, S, n);
    if (rel_err) *rel_err = total > 0.0 ? (float)sqrt(tail / total) : 0.0f;
    return LORT_OK;
}

LORT_DEF lort_status lort_adapter_to_lora(const lort_adapter *a, lort_lora_desc *lora,
                                          float *params, float *rel_err, const float *W0, int r,
                                          const lort_svd_opts *opts, void *work,
                                          size_t work_size) {
    lort__export_plan E;
    lort__views v;
    lort_status st;
    float *base, *A, *B;
    if ((st = lort__export_plan_make(a, r, opts, &E))) return st;
    if (!lora || !params) return LORT_ERR_NULL;
    if (E.res != LORT_MPO_RESIDUAL_NONE && (!W0 || !a->frozen)) return LORT_ERR_NULL;
    if ((st = lort__adapter_views(a, &v))) return st;
    if ((st = lort__lay_check(&E.L, work, work_size, LORT_ERR_WORKSPACE))) return st;
    base = lort__lay_base(work);
    A = params;
    B = params + (size_t)E.r * (size_t)E.d_in;
    st = E.dense ? lort__export_dense(a, &E, A, B, rel_err, W0, base)
                 : lort__export_thin(a, &E, A, B, rel_err, base);
    if (st) return st;
    lort__export_desc(&E, lora);
    return LORT_OK;
}

/* Why site i cannot be exported at rank r (after lort_set_validate passed). */
LORT__PRIVATE lort_status lort__export_site_plan(lort__msg *m, const lort_adapter_set *set, int i,
                                                 int r, const lort_svd_opts *opts,
                                                 lort_adapter *a, lort__export_plan *E) {
    lort_status st;
    if ((st = lort_set_site_adapter(set, i, a))) return st;
    if ((st = lort__export_plan_make(a, r, opts, E)) == LORT_OK) return LORT_OK;
    lort__msg_site(m, set, i);
    lort__msg_str(m, lort__kind_name(a->kind));
    if (st == LORT_ERR_NOT_MERGEABLE)
        lort__msg_str(m, ": not linear, no weight delta to export");
    else if (r <= 0) {
        lort__msg_str(m, ": export ");
        (void)lort__msg_field(m, "r", r, "> 0");
    } else {
        lort__msg_str(m, ": ");
        lort__msg_str(m, lort_status_string(st));
    }
    return st;
}

LORT_DEF lort_status lort_set_to_lora_size(const lort_adapter_set *set, int r,
                                           const lort_svd_opts *opts, size_t *param_floats,
                                           size_t *work_bytes, char *msg, size_t msg_size) {
    lort__msg m;
    lort_status st;
    size_t np = 0, wb = 0, b, t;
    int i;
    if (!param_floats || !work_bytes) return LORT_ERR_NULL;
    if ((st = lort_set_validate(set, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    for (i = 0; i < set->n_sites; ++i) {
        lort_adapter a;
        lort__export_plan E;
        if ((st = lort__export_site_plan(&m, set, i, r, opts, &a, &E))) return st;
        if ((st = lort__lay_bytes(&E.L, &b))) return st;
        t = (size_t)E.r * ((size_t)E.d_in + (size_t)E.d_out);
        if (t > LORT__SIZE_LIMIT / sizeof(float) - np) return LORT_ERR_OVERFLOW;
        np += t;
        if (b > wb) wb = b;
    }
    *param_floats = np;
    *work_bytes = wb;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_to_lora(const lort_adapter_set *set, lort_adapter_set *out,
                                      lort_adapter *entries, lort_set_site *sites,
                                      float *params, size_t param_floats, float *rel_err,
                                      const float *const *W0, int r, const lort_svd_opts *opts,
                                      void *work, size_t work_size, char *msg, size_t msg_size) {
    lort__msg m;
    lort_status st;
    size_t need = 0, wneed = 0, off = 0;
    int i;
    if ((st = lort_set_to_lora_size(set, r, opts, &need, &wneed, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    if (!out || (set->n_sites > 0 && (!entries || !sites || !params))) {
        lort__msg_str(&m, "out, entries, sites or params is NULL");
        return LORT_ERR_NULL;
    }
    if (param_floats < need) {
        lort__msg_str(&m, "params holds ");
        lort__msg_int(&m, (long long)param_floats);
        lort__msg_str(&m, " floats, the export needs ");
        lort__msg_int(&m, (long long)need);
        return LORT_ERR_INVALID_ARG;
    }
    if (wneed && (!work || work_size < wneed)) {
        lort__msg_str(&m, "work holds ");
        lort__msg_int(&m, work ? (long long)work_size : 0);
        lort__msg_str(&m, " bytes, the export needs ");
        lort__msg_int(&m, (long long)wneed);
        return work ? LORT_ERR_WORKSPACE : LORT_ERR_NULL;
    }
    for (i = 0; i < set->n_sites; ++i) { /* every base weight needed is there (nothing written) */
        lort_adapter a;
        lort__export_plan E;
        if ((st = lort__export_site_plan(&m, set, i, r, opts, &a, &E))) return st;
        if (E.res != LORT_MPO_RESIDUAL_NONE && (!W0 || !W0[i])) {
            lort__msg_site(&m, set, i);
            lort__msg_str(&m, "mpo: with a residual the adapter replaces the base layer; its "
                              "export is M + W_res - W0 and needs W0[");
            lort__msg_int(&m, i);
            lort__msg_str(&m, "], the base weight");
            return LORT_ERR_NULL;
        }
    }
    for (i = 0; i < set->n_sites; ++i) {
        lort_adapter a, *e = &entries[i];
        lort__export_plan E;
        float err = 0.0f;
        const float *w0 = W0 ? W0[i] : NULL;
        if ((st = lort__export_site_plan(&m, set, i, r, opts, &a, &E))) return st;
        memset(e, 0, sizeof(*e));
        e->kind = LORT_KIND_LORA;
        e->params = params + off;
        if ((st = lort_adapter_to_lora(&a, &e->desc.lora, e->params, &err, w0, r, opts, work,
                                       work_size))) {
            lort__msg_site(&m, set, i);
            lort__msg_str(&m, lort_status_string(st));
            return st;
        }
        off += (size_t)E.r * ((size_t)E.d_in + (size_t)E.d_out);
        sites[i] = set->sites[i];
        sites[i].entry = i;
        sites[i].layer = sites[i].matrix = 0;
        if (rel_err) rel_err[i] = err;
    }
    out->entries = entries;
    out->n_entries = set->n_sites;
    out->sites = sites;
    out->n_sites = set->n_sites;
    return LORT_OK;
}

#endif /* LORT__HAS_SVD */

// >>gguf ================================================================================= impl

#ifndef LORT_NO_STDIO
#include <stdio.h>
#endif

/* ---- writing: a sink that counts (buf NULL) or writes, little-endian whatever the host ---- */
typedef struct lort__sink {
    unsigned char *buf;
    size_t cap, pos;
    int overflow;
} lort__sink;
LORT__PRIVATE void lort__put(lort__sink *s, const void *p, size_t n) {
    if (n > LORT__SIZE_LIMIT - s->pos) {
        s->overflow = 1;
        return;
    }
    if (s->buf && s->pos + n <= s->cap && p) memcpy(s->buf + s->pos, p, n);
    else if (s->buf && s->pos + n <= s->cap) memset(s->buf + s->pos, 0, n);
    s->pos += n;
}
LORT__PRIVATE void lort__put_u32(lort__sink *s, uint32_t v) {
    unsigned char b[4];
    int i;
    for (i = 0; i < 4; ++i) b[i] = (unsigned char)(v >> (8 * i));
    lort__put(s, b, 4);
}
LORT__PRIVATE void lort__put_u64(lort__sink *s, uint64_t v) {
    unsigned char b[8];
    int i;
    for (i = 0; i < 8; ++i) b[i] = (unsigned char)(v >> (8 * i));
    lort__put(s, b, 8);
}
LORT__PRIVATE void lort__put_str(lort__sink *s, const char *str) {
    size_t n = strlen(str);
    lort__put_u64(s, (uint64_t)n);
    lort__put(s, str, n);
}
LORT__PRIVATE void lort__put_pad(lort__sink *s, size_t align) {
    size_t r = s->pos % align;
    if (r) lort__put(s, NULL, align - r);
}
/* count floats x[i] * f (f = 1: the values as they are) as F32 or F16 */
LORT__PRIVATE void lort__put_floats(lort__sink *s, const float *x, size_t count, float f,
                                    int f16, int scale) {
    size_t i;
    if (!s->buf) {
        lort__put(s, NULL, count * (f16 ? 2u : 4u));
        return;
    }
    for (i = 0; i < count; ++i) {
        float v = scale ? x[i] * f : x[i];
        if (f16) {
            uint16_t h = (uint16_t)lort__f32_to_f16(v);
            unsigned char b[2];
            b[0] = (unsigned char)(h & 0xffu);
            b[1] = (unsigned char)(h >> 8);
            lort__put(s, b, 2);
        } else {
            lort__put_u32(s, lort__f32_bits(v));
        }
    }
}

LORT__PRIVATE int lort__is_digit(char c) { return c >= '0' && c <= '9'; }
LORT_DEF lort_status lort_gguf_llama_name(char *out, size_t out_size, const char *site) {
    static const char *const from[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                        "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
                                        "mlp.down_proj"};
    static const char *const to[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate",
                                      "ffn_up", "ffn_down"};
    const char *p = site, *num;
    size_t nd = 0, need;
    int i;
    lort__msg m;
    if (!out || !site) return LORT_ERR_NULL;
    if (strncmp(p, "base_model.model.", 17) == 0) p += 17;
    if (strncmp(p, "model.layers.", 13) != 0) return LORT_ERR_NOT_FOUND;
    p += 13;
    num = p;
    while (lort__is_digit(p[nd])) ++nd;
    if (nd == 0 || nd > 9 || (nd > 1 && num[0] == '0') || p[nd] != '.') return LORT_ERR_NOT_FOUND;
    p += nd + 1;
    for (i = 0; i < 7; ++i)
        if (strcmp(p, from[i]) == 0) break;
    if (i == 7) return LORT_ERR_NOT_FOUND;
    need = 4 + nd + 1 + strlen(to[i]) + 7 + 1; /* "blk." N "." to ".weight" NUL */
    if (out_size < need) return LORT_ERR_INVALID_ARG;
    lort__msg_init(&m, out, out_size);
    lort__msg_str(&m, "blk.");
    {
        char t[12];
        memcpy(t, num, nd);
        t[nd] = '\0';
        lort__msg_str(&m, t);
    }
    lort__msg_str(&m, ".");
    lort__msg_str(&m, to[i]);
    lort__msg_str(&m, ".weight");
    return LORT_OK;
}

/* GGML_MAX_NAME: a tensor name with its NUL fits 64 bytes */
#define LORT__GGUF_NAME_MAX 64

#if LORT__HAS_LORA
/* The base name of site i into nb (LORT__GGUF_NAME_MAX bytes); msg on failure. */
LORT__PRIVATE lort_status lort__gguf_base(lort__msg *m, const lort_adapter_set *set,
                                          const lort_gguf_lora_opts *o, int i, char *nb) {
    const char *given = o && o->base_names ? o->base_names[i] : NULL;
    lort_status st;
    if (given) {
        size_t n = strlen(given);
        if (n == 0 || n + 7 >= LORT__GGUF_NAME_MAX) {
            lort__msg_site(m, set, i);
            lort__msg_str(m, "base name \"");
            lort__msg_str(m, given);
            lort__msg_str(m, "\": with \".lora_a\" it must be 1..63 bytes");
            return LORT_ERR_INVALID_ARG;
        }
        memcpy(nb, given, n + 1);
        return LORT_OK;
    }
    if (!set->sites[i].name) st = LORT_ERR_NOT_FOUND;
    else st = lort_gguf_llama_name(nb, LORT__GGUF_NAME_MAX - 7, set->sites[i].name);
    if (st) {
        lort__msg_site(m, set, i);
        lort__msg_str(m, st == LORT_ERR_NOT_FOUND ? "not a LLaMA module path: give its GGUF name in "
                                                    "opts.base_names"
                                                  : "GGUF name longer than 63 bytes");
        return st == LORT_ERR_NOT_FOUND ? LORT_ERR_NOT_FOUND : LORT_ERR_INVALID_ARG;
    }
    return LORT_OK;
}

/* The one pass that validates (buf NULL), sizes and writes. */
LORT__PRIVATE lort_status lort__gguf_lora(lort__sink *s, const lort_adapter_set *set,
                                          const lort_gguf_lora_opts *o, char *msg,
                                          size_t msg_size) {
    lort__msg m;
    lort_status st;
    char nb[LORT__GGUF_NAME_MAX], nb2[LORT__GGUF_NAME_MAX], tn[LORT__GGUF_NAME_MAX + 8];
    const char *arch = o && o->architecture ? o->architecture : "llama";
    int i, j, f16 = o && o->f16, ab;
    float alpha = 0.0f;
    size_t off = 0, esz = f16 ? 2u : 4u;
    if ((st = lort_set_validate(set, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    if (set->n_sites == 0) {
        lort__msg_str(&m, "set: no sites");
        return LORT_ERR_INVALID_ARG;
    }
    for (i = 0; i < set->n_sites; ++i) {
        const lort_adapter *e = &set->entries[set->sites[i].entry];
        float sc = 0.0f;
        if (e->kind != LORT_KIND_LORA) {
            lort__msg_site(&m, set, i);
            lort__msg_str(&m, lort__kind_name(e->kind));
            lort__msg_str(&m, ": GGUF holds lora entries; export with lort_set_to_lora first");
            return LORT_ERR_UNSUPPORTED;
        }
        if (!e->params) {
            lort__msg_site(&m, set, i);
            lort__msg_str(&m, "params is NULL");
            return LORT_ERR_NULL;
        }
        (void)lort_lora_scale(&e->desc.lora, &sc);
        if (i == 0) alpha = sc * (float)e->desc.lora.r;
        if (!lort__finite(sc * (float)e->desc.lora.r) || lort__is_zero(alpha)) {
            lort__msg_site(&m, set, i);
            lort__msg_str(&m, "scale times r is 0 or not finite");
            return LORT_ERR_INVALID_ARG;
        }
        if ((st = lort__gguf_base(&m, set, o, i, nb))) return st;
        for (j = 0; j < i; ++j) { /* O(sites^2): once per file */
            (void)lort__gguf_base(&m, set, o, j, nb2);
            if (strcmp(nb, nb2) == 0) {
                lort__msg_site(&m, set, i);
                lort__msg_str(&m, "same GGUF tensor ");
                lort__msg_str(&m, nb);
                lort__msg_str(&m, " as site ");
                lort__msg_int(&m, j);
                return LORT_ERR_INVALID_ARG;
            }
        }
    }
    /* header and KV pairs */
    lort__put(s, "GGUF", 4);
    lort__put_u32(s, 3);
    lort__put_u64(s, 2u * (uint64_t)set->n_sites);
    lort__put_u64(s, o && o->name ? 5u : 4u);
    lort__put_str(s, "general.architecture");
    lort__put_u32(s, LORT_GGUF_STRING);
    lort__put_str(s, arch);
    if (o && o->name) {
        lort__put_str(s, "general.name");
        lort__put_u32(s, LORT_GGUF_STRING);
        lort__put_str(s, o->name);
    }
    lort__put_str(s, "general.type");
    lort__put_u32(s, LORT_GGUF_STRING);
    lort__put_str(s, "adapter");
    lort__put_str(s, "adapter.type");
    lort__put_u32(s, LORT_GGUF_STRING);
    lort__put_str(s, "lora");
    lort__put_str(s, "adapter.lora.alpha");
    lort__put_u32(s, LORT_GGUF_FLOAT32);
    lort__put_u32(s, lort__f32_bits(alpha));
    /* tensor infos: lora_a ne {d_in, r}, lora_b ne {r, d_out} */
    for (i = 0; i < set->n_sites; ++i) {
        const lort_lora_desc *d = &set->entries[set->sites[i].entry].desc.lora;
        (void)lort__gguf_base(&m, set, o, i, nb);
        for (ab = 0; ab < 2; ++ab) {
            size_t n = (size_t)d->r * (size_t)(ab ? d->d_out : d->d_in) * esz;
            lort__msg_init(&m, tn, sizeof(tn));
            lort__msg_str(&m, nb);
            lort__msg_str(&m, ab ? ".lora_b" : ".lora_a");
            lort__put_str(s, tn);
            lort__put_u32(s, 2);
            lort__put_u64(s, (uint64_t)(ab ? d->r : d->d_in));
            lort__put_u64(s, (uint64_t)(ab ? d->d_out : d->r));
            lort__put_u32(s, f16 ? LORT_GGML_F16 : LORT_GGML_F32);
            lort__put_u64(s, (uint64_t)off);
            n = (n + LORT_GGUF_ALIGNMENT - 1) / LORT_GGUF_ALIGNMENT * LORT_GGUF_ALIGNMENT;
            if (n > LORT__SIZE_LIMIT - off) s->overflow = 1;
            else off += n;
        }
    }
    lort__put_pad(s, LORT_GGUF_ALIGNMENT);
    /* data: A as is, B times s_i r_i / alpha */
    for (i = 0; i < set->n_sites; ++i) {
        const lort_adapter *e = &set->entries[set->sites[i].entry];
        const lort_lora_desc *d = &e->desc.lora;
        size_t ra = (size_t)d->r * (size_t)d->d_in;
        float sc = 0.0f, f;
        (void)lort_lora_scale(d, &sc);
        f = sc * (float)d->r / alpha;
        lort__put_floats(s, e->params, ra, 1.0f, f16, 0);
        lort__put_pad(s, LORT_GGUF_ALIGNMENT);
        lort__put_floats(s, e->params + ra, (size_t)d->d_out * (size_t)d->r, f, f16,
                         lort__f32_bits(f) != lort__f32_bits(1.0f));
        lort__put_pad(s, LORT_GGUF_ALIGNMENT);
    }
    lort__msg_init(&m, msg, msg_size);
    if (s->overflow) {
        lort__msg_str(&m, "the file size overflows size_t");
        return LORT_ERR_OVERFLOW;
    }
    return LORT_OK;
}

LORT_DEF lort_status lort_gguf_lora_size(const lort_adapter_set *set,
                                         const lort_gguf_lora_opts *opts, size_t *bytes,
                                         char *msg, size_t msg_size) {
    lort__sink s;
    lort_status st;
    if (!bytes) return LORT_ERR_NULL;
    memset(&s, 0, sizeof(s));
    if ((st = lort__gguf_lora(&s, set, opts, msg, msg_size))) return st;
    *bytes = s.pos;
    return LORT_OK;
}

LORT_DEF lort_status lort_gguf_lora_write(void *buf, size_t buf_size, size_t *written,
                                          const lort_adapter_set *set,
                                          const lort_gguf_lora_opts *opts, char *msg,
                                          size_t msg_size) {
    lort__sink s;
    lort__msg m;
    lort_status st;
    size_t need = 0;
    if ((st = lort_gguf_lora_size(set, opts, &need, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    if (!buf || !written) {
        lort__msg_str(&m, "buf or written is NULL");
        return LORT_ERR_NULL;
    }
    if (buf_size < need) {
        lort__msg_str(&m, "buffer of ");
        lort__msg_int(&m, (long long)buf_size);
        lort__msg_str(&m, " bytes, the file needs ");
        lort__msg_int(&m, (long long)need);
        return LORT_ERR_INVALID_ARG;
    }
    memset(&s, 0, sizeof(s));
    s.buf = (unsigned char *)buf;
    s.cap = buf_size;
    if ((st = lort__gguf_lora(&s, set, opts, msg, msg_size))) return st;
    *written = s.pos;
    return LORT_OK;
}

#ifndef LORT_NO_STDIO
LORT_DEF lort_status lort_gguf_lora_write_file(const char *path, const lort_adapter_set *set,
                                               const lort_gguf_lora_opts *opts,
                                               const lort_allocator *allocator, char *msg,
                                               size_t msg_size) {
    lort__msg m;
    lort_status st;
    size_t need = 0, written = 0;
    void *buf = NULL;
    FILE *f;
    int bad;
    if (!path) return LORT_ERR_NULL;
    if ((st = lort_gguf_lora_size(set, opts, &need, msg, msg_size))) return st;
    if ((st = lort_alloc(allocator, need, &buf))) return st;
    if ((st = lort_gguf_lora_write(buf, need, &written, set, opts, msg, msg_size))) {
        lort_free(allocator, buf);
        return st;
    }
    lort__msg_init(&m, msg, msg_size);
    f = fopen(path, "wb");
    bad = !f || fwrite(buf, 1, written, f) != written;
    if (f && fclose(f) != 0) bad = 1;
    lort_free(allocator, buf);
    if (bad) {
        lort__msg_str(&m, "cannot write ");
        lort__msg_str(&m, path);
        return LORT_ERR_INVALID_ARG;
    }
    return LORT_OK;
}
#endif

#endif /* LORT__HAS_LORA */

/* ---- reading ----------------------------------------------------------------------------- */
typedef struct lort__cursor {
    const unsigned char *p;
    size_t size, pos;
} lort__cursor;
LORT__PRIVATE int lort__get(lort__cursor *c, size_t n, const unsigned char **out) {
    if (n > c->size - c->pos) return 0;
    *out = c->p + c->pos;
    c->pos += n;
    return 1;
}
LORT__PRIVATE int lort__get_u32(lort__cursor *c, uint32_t *v) {
    const unsigned char *b;
    int i;
    if (!lort__get(c, 4, &b)) return 0;
    *v = 0;
    for (i = 3; i >= 0; --i) *v = (*v << 8) | b[i];
    return 1;
}
LORT__PRIVATE int lort__get_u64(lort__cursor *c, uint64_t *v) {
    const unsigned char *b;
    int i;
    if (!lort__get(c, 8, &b)) return 0;
    *v = 0;
    for (i = 7; i >= 0; --i) *v = (*v << 8) | b[i];
    return 1;
}
/* a GGUF string: u64 length, then the bytes */
LORT__PRIVATE int lort__get_str(lort__cursor *c, const char **s, size_t *len) {
    uint64_t n;
    const unsigned char *b;
    if (!lort__get_u64(c, &n) || n > (uint64_t)(c->size - c->pos) || !lort__get(c, (size_t)n, &b))
        return 0;
    *s = (const char *)(const void *)b;
    *len = (size_t)n;
    return 1;
}
/* bytes of a scalar value type; 0 for STRING, ARRAY and unknown types */
LORT__PRIVATE size_t lort__gguf_scalar_size(uint32_t t) {
    switch (t) {
    case LORT_GGUF_UINT8: case LORT_GGUF_INT8: case LORT_GGUF_BOOL: return 1;
    case LORT_GGUF_UINT16: case LORT_GGUF_INT16: return 2;
    case LORT_GGUF_UINT32: case LORT_GGUF_INT32: case LORT_GGUF_FLOAT32: return 4;
    case LORT_GGUF_UINT64: case LORT_GGUF_INT64: case LORT_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}
/* ggml block size and bytes per block; 0 for a type this reader does not size */
LORT__PRIVATE int lort__ggml_type(uint32_t t, size_t *blck, size_t *bytes) {
    switch (t) {
    case LORT_GGML_F32: case LORT_GGML_I32: *blck = 1; *bytes = 4; return 1;
    case LORT_GGML_F16: case LORT_GGML_BF16: case LORT_GGML_I16: *blck = 1; *bytes = 2; return 1;
    case LORT_GGML_I8: *blck = 1; *bytes = 1; return 1;
    case LORT_GGML_I64: case LORT_GGML_F64: *blck = 1; *bytes = 8; return 1;
    case LORT_GGML_Q4_0: *blck = 32; *bytes = 18; return 1;
    case LORT_GGML_Q8_0: *blck = 32; *bytes = 34; return 1;
    default: return 0;
    }
}
LORT__PRIVATE void lort__msg_at(lort__msg *m, const char *what, uint64_t i, size_t pos) {
    lort__msg_str(m, "gguf: ");
    lort__msg_str(m, what);
    lort__msg_str(m, " ");
    lort__msg_int(m, (long long)i);
    lort__msg_str(m, " at byte ");
    lort__msg_int(m, (long long)pos);
    lort__msg_str(m, ": ");
}

LORT_DEF lort_status lort_gguf_read(lort_gguf_info *info, lort_gguf_kv *kvs, size_t max_kvs,
                                    lort_gguf_tensor *tensors, size_t max_tensors,
                                    const void *buf, size_t size, char *msg, size_t msg_size) {
    lort__msg m;
    lort__cursor c;
    lort_gguf_info inf;
    const unsigned char *b;
    uint64_t i, j, align = LORT_GGUF_ALIGNMENT, run = 0, end = 0;
    size_t tpos;
    lort__msg_init(&m, msg, msg_size);
    if (!info || !buf || (max_kvs && !kvs) || (max_tensors && !tensors)) {
        lort__msg_str(&m, "gguf: NULL argument");
        return LORT_ERR_NULL;
    }
    memset(&inf, 0, sizeof(inf));
    c.p = (const unsigned char *)buf;
    c.size = size;
    c.pos = 0;
    if (!lort__get(&c, 4, &b) || memcmp(b, "GGUF", 4) != 0) {
        lort__msg_str(&m, "gguf: no GGUF magic");
        return LORT_ERR_FORMAT;
    }
    if (!lort__get_u32(&c, &inf.version) || (inf.version != 2 && inf.version != 3)) {
        lort__msg_str(&m, "gguf: version ");
        lort__msg_int(&m, (long long)inf.version);
        lort__msg_str(&m, ", must be 2 or 3 (little-endian)");
        return LORT_ERR_FORMAT;
    }
    if (!lort__get_u64(&c, &inf.n_tensors) || !lort__get_u64(&c, &inf.n_kv)) {
        lort__msg_str(&m, "gguf: truncated header");
        return LORT_ERR_FORMAT;
    }
    /* each KV takes >= 13 bytes, each tensor info >= 33: counts beyond that are lies */
    if (inf.n_kv > (uint64_t)(size - c.pos) / 13u || inf.n_tensors > (uint64_t)(size - c.pos) / 33u) {
        lort__msg_str(&m, "gguf: ");
        lort__msg_int(&m, (long long)(inf.n_kv > (uint64_t)LLONG_MAX ? (uint64_t)LLONG_MAX : inf.n_kv));
        lort__msg_str(&m, " KV pairs and ");
        lort__msg_int(&m, (long long)(inf.n_tensors > (uint64_t)LLONG_MAX ? (uint64_t)LLONG_MAX : inf.n_tensors));
        lort__msg_str(&m, " tensors cannot fit in ");
        lort__msg_int(&m, (long long)size);
        lort__msg_str(&m, " bytes");
        return LORT_ERR_FORMAT;
    }
    for (i = 0; i < inf.n_kv; ++i) {
        lort_gguf_kv kv;
        size_t kpos = c.pos, es;
        memset(&kv, 0, sizeof(kv));
        kv.count = 1;
        if (!lort__get_str(&c, &kv.key, &kv.key_len) || kv.key_len == 0) {
            lort__msg_at(&m, "KV", i, kpos);
            lort__msg_str(&m, "bad key string");
            return LORT_ERR_FORMAT;
        }
        for (j = 0; j < i && j < max_kvs; ++j) /* duplicates: against the stored ones */
            if (kvs[j].key_len == kv.key_len && memcmp(kvs[j].key, kv.key, kv.key_len) == 0) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "duplicate key");
                return LORT_ERR_FORMAT;
            }
        if (!lort__get_u32(&c, &kv.type)) {
            lort__msg_at(&m, "KV", i, kpos);
            lort__msg_str(&m, "truncated");
            return LORT_ERR_FORMAT;
        }
        if (kv.type == LORT_GGUF_STRING) {
            const char *sv = NULL;
            int okv = lort__get_str(&c, &sv, &kv.data_size);
            kv.data = sv;
            if (!okv) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "string value out of bounds");
                return LORT_ERR_FORMAT;
            }
        } else if (kv.type == LORT_GGUF_ARRAY) {
            size_t start;
            if (!lort__get_u32(&c, &kv.elem_type) || !lort__get_u64(&c, &kv.count)) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "truncated array header");
                return LORT_ERR_FORMAT;
            }
            start = c.pos;
            if (kv.elem_type == LORT_GGUF_STRING) {
                const char *sv;
                size_t sl;
                if (kv.count > (uint64_t)(size - c.pos) / 8u) {
                    lort__msg_at(&m, "KV", i, kpos);
                    lort__msg_str(&m, "array of strings longer than the buffer");
                    return LORT_ERR_FORMAT;
                }
                for (j = 0; j < kv.count; ++j)
                    if (!lort__get_str(&c, &sv, &sl)) {
                        lort__msg_at(&m, "KV", i, kpos);
                        lort__msg_str(&m, "array string out of bounds");
                        return LORT_ERR_FORMAT;
                    }
            } else if ((es = lort__gguf_scalar_size(kv.elem_type)) == 0) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "array element type ");
                lort__msg_int(&m, (long long)kv.elem_type);
                lort__msg_str(&m, " (nested arrays are refused)");
                return LORT_ERR_FORMAT;
            } else if (kv.count > (uint64_t)(size - c.pos) / es || !lort__get(&c, (size_t)kv.count * es, &b)) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "array longer than the buffer");
                return LORT_ERR_FORMAT;
            }
            kv.data = c.p + start;
            kv.data_size = c.pos - start;
        } else if ((es = lort__gguf_scalar_size(kv.type)) != 0) {
            if (!lort__get(&c, es, &b)) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "truncated value");
                return LORT_ERR_FORMAT;
            }
            if (kv.type == LORT_GGUF_BOOL && b[0] > 1) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "bool value not 0 or 1");
                return LORT_ERR_FORMAT;
            }
            kv.data = b;
            kv.data_size = es;
        } else {
            lort__msg_at(&m, "KV", i, kpos);
            lort__msg_str(&m, "value type ");
            lort__msg_int(&m, (long long)kv.type);
            lort__msg_range(&m, 0, 13);
            return LORT_ERR_FORMAT;
        }
        if (kv.key_len == 17 && memcmp(kv.key, "general.alignment", 17) == 0) {
            uint32_t a = 0;
            if (kv.type == LORT_GGUF_UINT32) {
                const unsigned char *v = (const unsigned char *)kv.data;
                a = (uint32_t)v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
            }
            if (a == 0 || (a & (a - 1u))) {
                lort__msg_at(&m, "KV", i, kpos);
                lort__msg_str(&m, "general.alignment must be a UINT32 power of two");
                return LORT_ERR_FORMAT;
            }
            align = a;
        }
        if (i < max_kvs) kvs[i] = kv;
    }
    inf.alignment = (uint32_t)align;
    tpos = c.pos;
    for (i = 0; i < inf.n_tensors; ++i) {
        lort_gguf_tensor t;
        size_t ipos = c.pos, blck = 0, tb = 0;
        uint64_t nel = 1, nb;
        uint32_t d;
        memset(&t, 0, sizeof(t));
        if (!lort__get_str(&c, &t.name, &t.name_len) || t.name_len == 0 ||
            t.name_len >= LORT__GGUF_NAME_MAX) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "name missing, empty or 64 bytes or longer");
            return LORT_ERR_FORMAT;
        }
        if (!lort__get_u32(&c, &t.n_dims) || t.n_dims < 1 || t.n_dims > 4) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "n_dims must be 1..4");
            return LORT_ERR_FORMAT;
        }
        for (d = 0; d < 4; ++d) t.ne[d] = 1;
        for (d = 0; d < t.n_dims; ++d) {
            if (!lort__get_u64(&c, &t.ne[d]) || t.ne[d] > (uint64_t)INT64_MAX ||
                (t.ne[d] && nel > (uint64_t)INT64_MAX / t.ne[d])) {
                lort__msg_at(&m, "tensor", i, ipos);
                lort__msg_str(&m, "ne out of int64 range or truncated");
                return LORT_ERR_FORMAT;
            }
            nel *= t.ne[d];
        }
        if (!lort__get_u32(&c, &t.type) || !lort__get_u64(&c, &t.offset)) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "truncated");
            return LORT_ERR_FORMAT;
        }
        if (!lort__ggml_type(t.type, &blck, &tb)) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "ggml type ");
            lort__msg_int(&m, (long long)t.type);
            lort__msg_str(&m, " not known to this reader");
            return LORT_ERR_UNSUPPORTED;
        }
        if (t.ne[0] % blck) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "ne[0] not a multiple of the type's block");
            return LORT_ERR_FORMAT;
        }
        nb = nel / blck;
        if (nb > (uint64_t)LORT__SIZE_LIMIT / tb) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "size overflows");
            return LORT_ERR_FORMAT;
        }
        t.bytes = (size_t)(nb * tb);
        if (t.offset != run) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "offset ");
            lort__msg_int(&m, (long long)(t.offset > (uint64_t)LLONG_MAX ? (uint64_t)LLONG_MAX : t.offset));
            lort__msg_str(&m, ", expected ");
            lort__msg_int(&m, (long long)run);
            return LORT_ERR_FORMAT;
        }
        /* the data must end inside the buffer (the last tensor need not be padded: writers
           differ, and llama.cpp maps the file); the next offset is this end rounded up */
        if (run > (uint64_t)size || t.bytes > size - (size_t)run) {
            lort__msg_at(&m, "tensor", i, ipos);
            lort__msg_str(&m, "data past the end of the buffer");
            return LORT_ERR_FORMAT;
        }
        end = run + (uint64_t)t.bytes;
        run = (end + align - 1u) / align * align;
        if (i < max_tensors) tensors[i] = t;
    }
    /* duplicate tensor names: O(n^2) over the stored ones (names are short) */
    for (i = 0; i < inf.n_tensors && i < max_tensors; ++i)
        for (j = 0; j < i; ++j)
            if (tensors[i].name_len == tensors[j].name_len &&
                memcmp(tensors[i].name, tensors[j].name, tensors[i].name_len) == 0) {
                lort__msg_at(&m, "tensor", i, tpos);
                lort__msg_str(&m, "duplicate name");
                return LORT_ERR_FORMAT;
            }
    inf.data_offset = (size_t)(((uint64_t)c.pos + align - 1u) / align * align);
    if ((uint64_t)inf.data_offset > (uint64_t)size || end > (uint64_t)(size - inf.data_offset)) {
        lort__msg_str(&m, "gguf: the data section (");
        lort__msg_int(&m, (long long)end);
        lort__msg_str(&m, " bytes from byte ");
        lort__msg_int(&m, (long long)inf.data_offset);
        lort__msg_str(&m, ") runs past the end of the buffer");
        return LORT_ERR_FORMAT;
    }
    for (i = 0; i < inf.n_tensors && i < max_tensors; ++i)
        tensors[i].data = c.p + inf.data_offset + (size_t)tensors[i].offset;
    *info = inf;
    return LORT_OK;
}

LORT_DEF lort_status lort_gguf_find_kv(const lort_gguf_kv *kvs, size_t n, const char *key,
                                       size_t *index) {
    size_t i, len;
    if ((n && !kvs) || !key || !index) return LORT_ERR_NULL;
    len = strlen(key);
    for (i = 0; i < n; ++i)
        if (kvs[i].key_len == len && memcmp(kvs[i].key, key, len) == 0) {
            *index = i;
            return LORT_OK;
        }
    return LORT_ERR_NOT_FOUND;
}

// >>blocks =============================================================================== impl

LORT__PRIVATE void lort__block_put(lort_block *b, int *k, int cap, const char *name, int index,
                                   int vector, size_t *offset, int ndim, const int *shape) {
    lort_block z;
    size_t cnt = 1, i = 0;
    int d;
    memset(&z, 0, sizeof z);
    while (name[i] && i + 4 < sizeof z.name) {
        z.name[i] = name[i];
        ++i;
    }
    if (index >= 0) { /* "core" + index (< 100) */
        if (index >= 10) z.name[i++] = (char)('0' + index / 10);
        z.name[i++] = (char)('0' + index % 10);
    }
    z.vector = vector;
    z.ndim = ndim;
    for (d = 0; d < ndim; ++d) {
        z.shape[d] = shape[d];
        cnt *= (size_t)shape[d]; /* sizes were validated by the family's count query */
    }
    z.offset = *offset;
    z.count = cnt;
    *offset += cnt;
    if (*k < cap && b) b[*k] = z;
    ++*k;
}

LORT__PRIVATE void lort__block_train(lort_block *b, int *k, int cap, const char *prefix,
                                     const lort_tt_desc *t, size_t *offset) {
    int c;
    for (c = 0; c < t->n_cores; ++c) {
        int shape[3];
        shape[0] = t->ranks[c];
        shape[1] = t->modes[c];
        shape[2] = t->ranks[c + 1];
        lort__block_put(b, k, cap, prefix, c, LORT_BLOCK_PARAMS, offset, 3, shape);
    }
}

/* cp / tucker factors A (d, r1), B (r2, d_h), C_H (H, rH), C_L (L, rL), C_M (M, rM). */
LORT__PRIVATE void lort__block_joint(lort_block *b, int *k, size_t *po, int d, int H, int L,
                                     int M, const int *rk) {
    static const char *const names[5] = {"A", "B", "C_H", "C_L", "C_M"};
    int i, sh[2], rows[5];
    rows[0] = d; rows[1] = rk[1]; rows[2] = H; rows[3] = L; rows[4] = M;
    for (i = 0; i < 5; ++i) {
        sh[0] = rows[i];
        sh[1] = i == 0 ? rk[0] : i == 1 ? d / H : rk[i];
        lort__block_put(b, k, 34, names[i], -1, LORT_BLOCK_PARAMS, po, 2, sh);
    }
}

LORT_DEF lort_status lort_adapter_blocks(const lort_adapter *a, lort_block *out, int cap,
                                         int *count) {
    lort_block tmp[2 * LORT_TT_MAX_CORES + 2];
    int k = 0, i, sh[5];
    size_t po = 0, fo = 0;
    lort_adapter_sizes sz;
    lort_status st;
    if (!a || !count || (cap > 0 && !out)) return LORT_ERR_NULL;
    if (cap < 0) return LORT_ERR_INVALID_ARG;
    if ((st = lort_adapter_sizes_query(a, 1, &sz))) return st;
    switch (a->kind) {
    case LORT_KIND_LORA:
    case LORT_KIND_LORAXS: {
        int r = a->kind == LORT_KIND_LORA ? a->desc.lora.r : a->desc.loraxs.r;
        int vec = a->kind == LORT_KIND_LORA ? LORT_BLOCK_PARAMS : LORT_BLOCK_FROZEN;
        size_t *o = a->kind == LORT_KIND_LORA ? &po : &fo;
        if (a->kind == LORT_KIND_LORAXS) {
            sh[0] = r;
            sh[1] = r;
            lort__block_put(tmp, &k, 34, "R", -1, LORT_BLOCK_PARAMS, &po, 2, sh);
        }
        sh[0] = r;
        sh[1] = sz.d_in;
        lort__block_put(tmp, &k, 34, "A", -1, vec, o, 2, sh);
        sh[0] = sz.d_out;
        sh[1] = r;
        lort__block_put(tmp, &k, 34, "B", -1, vec, o, 2, sh);
        break;
    }
#if LORT__HAS_TT_REP
    case LORT_KIND_TT_REP: {
        lort_tt_rep_desc r;
        if ((st = lort_tt_rep_desc_resolve(&a->desc.tt_rep, &r))) return st;
        lort__block_train(tmp, &k, 34, "A.core", &r.A, &po);
        lort__block_train(tmp, &k, 34, "B.core", &r.B, &po);
        break;
    }
#endif
#if LORT__HAS_TT_ADP
    case LORT_KIND_TT_ADP: {
        lort_tt_adp_desc r;
        if ((st = lort_tt_adp_desc_resolve(&a->desc.tt_adp, &r))) return st;
        lort__block_train(tmp, &k, 34, "down.core", &r.down, &po);
        lort__block_train(tmp, &k, 34, "up.core", &r.up, &po);
        sh[0] = r.bottleneck;
        lort__block_put(tmp, &k, 34, "beta_d", -1, LORT_BLOCK_PARAMS, &po, 1, sh);
        sh[0] = r.hidden;
        lort__block_put(tmp, &k, 34, "beta_u", -1, LORT_BLOCK_PARAMS, &po, 1, sh);
        break;
    }
#endif
#if LORT__HAS_CP
    case LORT_KIND_CP: {
        lort_cp_desc r;
        int rk[5];
        if ((st = lort_cp_desc_resolve(&a->desc.cp, &r))) return st;
        rk[0] = rk[1] = rk[2] = rk[3] = rk[4] = r.r;
        lort__block_joint(tmp, &k, &po, r.d, r.heads, r.layers, r.matrices, rk);
        break;
    }
#endif
#if LORT__HAS_TUCKER
    case LORT_KIND_TUCKER: {
        lort_tucker_desc r;
        int rk[5];
        if ((st = lort_tucker_desc_resolve(&a->desc.tucker, &r))) return st;
        rk[0] = r.r1; rk[1] = r.r2; rk[2] = r.rh; rk[3] = r.rl; rk[4] = r.rm;
        lort__block_put(tmp, &k, 34, "core", -1, LORT_BLOCK_PARAMS, &po, 5, rk);
        lort__block_joint(tmp, &k, &po, r.d, r.heads, r.layers, r.matrices, rk);
        break;
    }
#endif
#if LORT__HAS_MPO
    case LORT_KIND_MPO: {
        lort_mpo_desc r;
        if ((st = lort_mpo_desc_resolve(&a->desc.mpo, &r))) return st;
        for (i = 0; i < r.n_cores; ++i) {
            sh[0] = r.bonds[i];
            sh[1] = r.row_factors[i];
            sh[2] = r.col_factors[i];
            sh[3] = r.bonds[i + 1];
            lort__block_put(tmp, &k, 34, "core", i, LORT_BLOCK_PARAMS, &po, 4, sh);
        }
        if (r.residual == LORT_MPO_RESIDUAL_F32) {
            sh[0] = r.d_out;
            sh[1] = r.d_in;
            lort__block_put(tmp, &k, 34, "W_res", -1, LORT_BLOCK_FROZEN, &fo, 2, sh);
        } else if (r.residual == LORT_MPO_RESIDUAL_NF4) {
            size_t nb;
            if ((st = lort_nf4_size(r.d_out, r.d_in, &nb))) return st;
            if (nb > INT_MAX) return LORT_ERR_OVERFLOW;
            sh[0] = (int)nb;
            lort__block_put(tmp, &k, 34, "W_res_nf4", -1, LORT_BLOCK_FROZEN, &fo, 1, sh);
            tmp[k - 1].bytes_only = 1;
        }
        break;
    }
#endif
    default: return LORT_ERR_UNSUPPORTED;
    }
    /* the layout must tile what the size query says (a mismatch would be our bug) */
    if (po != sz.params || (k > 0 && tmp[k - 1].bytes_only ? tmp[k - 1].count : fo * sizeof(float)) !=
                               sz.frozen_bytes) {
        LORT_ASSERT(0);
        return LORT_ERR_SHAPE;
    }
    *count = k;
    if (cap < k) return out ? LORT_ERR_WORKSPACE : LORT_OK;
    for (i = 0; i < k; ++i) out[i] = tmp[i];
    return LORT_OK;
}

// >>json ================================================================================= impl

/* A strict JSON reader of a caller buffer (RFC 8259: no comments, no trailing commas, valid
   escapes and UTF-8, nesting <= 64), used by the safetensors header and the PEFT config. No
   allocation; strings are returned as raw spans and decoded on demand. */
typedef struct lort__json {
    const unsigned char *p, *end;
    lort__msg *m;
    int depth;
} lort__json;
typedef struct lort__span {
    const unsigned char *p;   /* raw bytes between the quotes */
    size_t raw, len;          /* raw length, decoded length */
} lort__span;

LORT__PRIVATE lort_status lort__js_fail(lort__json *j, const char *what) {
    lort__msg_str(j->m, what);
    return LORT_ERR_FORMAT;
}
LORT__PRIVATE void lort__js_ws(lort__json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        ++j->p;
}
/* the next non-space byte is c: consume it */
LORT__PRIVATE int lort__js_eat(lort__json *j, unsigned char c) {
    lort__js_ws(j);
    if (j->p < j->end && *j->p == c) {
        ++j->p;
        return 1;
    }
    return 0;
}
LORT__PRIVATE int lort__js_hex4(const unsigned char *p, unsigned *v) {
    int i;
    *v = 0;
    for (i = 0; i < 4; ++i) {
        unsigned c = p[i], h;
        if (c >= '0' && c <= '9') h = c - '0';
        else if (c >= 'a' && c <= 'f') h = c - 'a' + 10u;
        else if (c >= 'A' && c <= 'F') h = c - 'A' + 10u;
        else return 0;
        *v = *v * 16u + h;
    }
    return 1;
}
/* Appends code point u as UTF-8 to out (if not NULL); returns its length. */
LORT__PRIVATE size_t lort__utf8_put(unsigned long u, char *out) {
    unsigned char b[4];
    size_t n, i;
    if (u < 0x80) { b[0] = (unsigned char)u; n = 1; }
    else if (u < 0x800) { b[0] = (unsigned char)(0xC0 | (u >> 6)); b[1] = (unsigned char)(0x80 | (u & 63)); n = 2; }
    else if (u < 0x10000) { b[0] = (unsigned char)(0xE0 | (u >> 12)); b[1] = (unsigned char)(0x80 | ((u >> 6) & 63)); b[2] = (unsigned char)(0x80 | (u & 63)); n = 3; }
    else { b[0] = (unsigned char)(0xF0 | (u >> 18)); b[1] = (unsigned char)(0x80 | ((u >> 12) & 63)); b[2] = (unsigned char)(0x80 | ((u >> 6) & 63)); b[3] = (unsigned char)(0x80 | (u & 63)); n = 4; }
    if (out)
        for (i = 0; i < n; ++i) out[i] = (char)b[i];
    return n;
}
/* Scans (out NULL) or decodes a string body; the span is already validated when decoding. */
LORT__PRIVATE lort_status lort__js_body(lort__json *j, const unsigned char *p,
                                        const unsigned char *end, char *out, size_t *len,
                                        const unsigned char **stop) {
    size_t n = 0;
    while (p < end && *p != '"') {
        unsigned c = *p;
        if (c < 0x20) return lort__js_fail(j, "control character in a JSON string");
        if (c == '\\') {
            unsigned long u;
            unsigned v, w;
            if (end - p < 2) break;
            switch (p[1]) {
            case '"': case '\\': case '/': u = p[1]; p += 2; break;
            case 'b': u = 8; p += 2; break;
            case 'f': u = 12; p += 2; break;
            case 'n': u = 10; p += 2; break;
            case 'r': u = 13; p += 2; break;
            case 't': u = 9; p += 2; break;
            case 'u':
                if (end - p < 6 || !lort__js_hex4(p + 2, &v))
                    return lort__js_fail(j, "bad \\u escape in a JSON string");
                p += 6;
                u = v;
                if (v >= 0xD800 && v < 0xDC00) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !lort__js_hex4(p + 2, &w) ||
                        w < 0xDC00 || w > 0xDFFF)
                        return lort__js_fail(j, "unpaired surrogate in a JSON string");
                    p += 6;
                    u = 0x10000ul + (((unsigned long)v - 0xD800ul) << 10) + (w - 0xDC00ul);
                } else if (v >= 0xDC00 && v < 0xE000) {
                    return lort__js_fail(j, "unpaired surrogate in a JSON string");
                }
                break;
            default: return lort__js_fail(j, "bad escape in a JSON string");
            }
            n += lort__utf8_put(u, out ? out + n : NULL);
            continue;
        }
        if (c < 0x80) {
            if (out) out[n] = (char)c;
            ++n;
            ++p;
        } else { /* UTF-8: well-formed, shortest form, no surrogates, <= U+10FFFF */
            size_t k, len8 = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            unsigned long cp;
            if (!len8 || c > 0xF4 || (size_t)(end - p) < len8)
                return lort__js_fail(j, "invalid UTF-8 in a JSON string");
            cp = c & (len8 == 2 ? 0x1Fu : len8 == 3 ? 0x0Fu : 0x07u);
            for (k = 1; k < len8; ++k) {
                if ((p[k] & 0xC0) != 0x80) return lort__js_fail(j, "invalid UTF-8 in a JSON string");
                cp = (cp << 6) | (p[k] & 0x3Fu);
            }
            if ((len8 == 3 && (cp < 0x800 || (cp >= 0xD800 && cp < 0xE000))) ||
                (len8 == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
                return lort__js_fail(j, "invalid UTF-8 in a JSON string");
            for (k = 0; k < len8; ++k)
                if (out) out[n + k] = (char)p[k];
            n += len8;
            p += len8;
        }
    }
    if (p >= end) return lort__js_fail(j, "unterminated JSON string");
    *len = n;
    *stop = p;
    return LORT_OK;
}
LORT__PRIVATE lort_status lort__js_string(lort__json *j, lort__span *s) {
    const unsigned char *stop;
    lort_status st;
    if (!lort__js_eat(j, '"')) return lort__js_fail(j, "expected a JSON string");
    if ((st = lort__js_body(j, j->p, j->end, NULL, &s->len, &stop))) return st;
    s->p = j->p;
    s->raw = (size_t)(stop - j->p);
    j->p = stop + 1;
    return LORT_OK;
}
/* out[0..s->len] = the decoded string and a NUL. */
LORT__PRIVATE void lort__js_decode(const lort__span *s, char *out) {
    size_t len;
    const unsigned char *stop;
    lort__msg none;
    lort__json j;
    lort__msg_init(&none, NULL, 0);
    j.p = s->p;
    j.end = s->p + s->raw + 1; /* the closing quote */
    j.m = &none;
    j.depth = 0;
    if (lort__js_body(&j, s->p, j.end, out, &len, &stop) == LORT_OK) out[len] = '\0';
    else out[0] = '\0';
}
/* decoded span == the NUL-terminated ASCII string t */
LORT__PRIVATE int lort__js_is(const lort__span *s, const char *t) {
    size_t n = strlen(t);
    return s->raw == n && memcmp(s->p, t, n) == 0;
}
/* A JSON number. *is_uint: a plain non-negative integer that fits in uint64 (*u). *v its
   value as a double (decimal to double by exact integer mantissa and a power of ten: within
   an ulp or two of correct rounding, exact for the integers and short decimals configs use). */
LORT__PRIVATE lort_status lort__js_number(lort__json *j, double *v, int *is_uint, uint64_t *u) {
    const unsigned char *p, *e;
    uint64_t mant = 0, iv = 0;
    int neg = 0, digits = 0, iover = 0, frac = 0, ex = 0, exneg = 0, expo = 0, integer = 1;
    double x, ten = 10.0;
    lort__js_ws(j);
    p = j->p;
    e = j->end;
    if (p < e && *p == '-') { neg = 1; ++p; }
    if (p >= e || *p < '0' || *p > '9') return lort__js_fail(j, "expected a JSON value");
    if (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9')
        return lort__js_fail(j, "leading zero in a JSON number");
    for (; p < e && *p >= '0' && *p <= '9'; ++p) {
        unsigned dg = (unsigned)(*p - '0');
        if (iv > (UINT64_MAX - dg) / 10u) iover = 1;
        else iv = iv * 10u + dg;
        if (digits < 19) { mant = mant * 10u + dg; ++digits; }
        else ++expo;
    }
    if (p < e && *p == '.') {
        integer = 0;
        ++p;
        if (p >= e || *p < '0' || *p > '9') return lort__js_fail(j, "bad JSON number");
        for (; p < e && *p >= '0' && *p <= '9'; ++p)
            if (digits < 19) { mant = mant * 10u + (unsigned)(*p - '0'); ++digits; --frac; }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        integer = 0;
        ++p;
        if (p < e && (*p == '+' || *p == '-')) exneg = *p++ == '-';
        if (p >= e || *p < '0' || *p > '9') return lort__js_fail(j, "bad JSON number");
        for (; p < e && *p >= '0' && *p <= '9'; ++p)
            if (ex < 100000) ex = ex * 10 + (*p - '0');
    }
    expo += frac + (exneg ? -ex : ex);
    x = (double)mant;
    if (mant != 0) {
        int k = expo < 0 ? -expo : expo;
        double pw = 1.0;
        if (k > 400) k = 400;
        while (k) { if (k & 1) pw *= ten; ten *= ten; k >>= 1; }
        x = expo < 0 ? x / pw : x * pw;
    }
    *v = neg ? -x : x;
    *is_uint = integer && !neg && !iover;
    *u = iv;
    j->p = p;
    return LORT_OK;
}
/* Skips one value of any type. */
LORT__PRIVATE lort_status lort__js_skip(lort__json *j) {
    lort__span s;
    double v;
    int iu;
    uint64_t u;
    lort_status st;
    lort__js_ws(j);
    if (j->p >= j->end) return lort__js_fail(j, "unexpected end of JSON");
    switch (*j->p) {
    case '"': return lort__js_string(j, &s);
    case '{':
    case '[': {
        unsigned char close = *j->p == '{' ? '}' : ']';
        int obj = close == '}';
        if (++j->depth > 64) return lort__js_fail(j, "JSON nested deeper than 64");
        ++j->p;
        if (!lort__js_eat(j, close)) {
            do {
                if (obj) {
                    if ((st = lort__js_string(j, &s))) return st;
                    if (!lort__js_eat(j, ':')) return lort__js_fail(j, "expected ':' in JSON");
                }
                if ((st = lort__js_skip(j))) return st;
            } while (lort__js_eat(j, ','));
            if (!lort__js_eat(j, close)) return lort__js_fail(j, "expected ',' or a closing bracket in JSON");
        }
        --j->depth;
        return LORT_OK;
    }
    case 't':
    case 'f':
    case 'n': {
        const char *lit = *j->p == 't' ? "true" : *j->p == 'f' ? "false" : "null";
        size_t n = strlen(lit);
        if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
            return lort__js_fail(j, "bad JSON literal");
        j->p += n;
        return LORT_OK;
    }
    default: return lort__js_number(j, &v, &iu, &u);
    }
}
/* 1 / 0 for true / false, 2 for null, -1 for anything else (not consumed). */
LORT__PRIVATE int lort__js_literal(lort__json *j) {
    static const char *lits[3] = {"false", "true", "null"};
    int i;
    lort__js_ws(j);
    for (i = 0; i < 3; ++i) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
            j->p += n;
            return i;
        }
    }
    return -1;
}
/* Object iteration: lort__js_obj_begin, then while lort__js_obj_next gives a key (1), parse the
   value; returns 0 at '}', or an error status (< 0). */
LORT__PRIVATE lort_status lort__js_obj_begin(lort__json *j) {
    if (!lort__js_eat(j, '{')) return lort__js_fail(j, "expected a JSON object");
    if (++j->depth > 64) return lort__js_fail(j, "JSON nested deeper than 64");
    return LORT_OK;
}
LORT__PRIVATE int lort__js_obj_next(lort__json *j, int first, lort__span *key) {
    lort_status st;
    if (first) {
        if (lort__js_eat(j, '}')) { --j->depth; return 0; }
    } else if (!lort__js_eat(j, ',')) {
        if (lort__js_eat(j, '}')) { --j->depth; return 0; }
        st = lort__js_fail(j, "expected ',' or '}' in a JSON object");
        return (int)st;
    }
    if ((st = lort__js_string(j, key))) return (int)st;
    if (!lort__js_eat(j, ':')) {
        st = lort__js_fail(j, "expected ':' in a JSON object");
        return (int)st;
    }
    return 1;
}

/* Heap sort of an index array by a caller comparison (no recursion, O(n log n)). */
typedef int (*lort__less_fn)(const void *ctx, size_t a, size_t b);
LORT__PRIVATE void lort__heap_sift(size_t *ix, size_t root, size_t n, lort__less_fn less,
                                   const void *ctx) {
    for (;;) {
        size_t c = 2 * root + 1, t;
        if (c >= n) return;
        if (c + 1 < n && less(ctx, ix[c], ix[c + 1])) ++c;
        if (!less(ctx, ix[root], ix[c])) return;
        t = ix[root]; ix[root] = ix[c]; ix[c] = t;
        root = c;
    }
}
LORT__PRIVATE void lort__heap_sort(size_t *ix, size_t n, lort__less_fn less, const void *ctx) {
    size_t i, t;
    if (n < 2) return;
    for (i = n / 2; i-- > 0;) lort__heap_sift(ix, i, n, less, ctx);
    for (i = n - 1; i > 0; --i) {
        t = ix[0]; ix[0] = ix[i]; ix[i] = t;
        lort__heap_sift(ix, 0, i, less, ctx);
    }
}

// >>st =================================================================================== impl

typedef struct lort__dtype_info {
    const char *name;
    int dtype;      /* lort_dtype, or -1 for dtypes only size-checked */
    unsigned bits;
} lort__dtype_info;
static const lort__dtype_info lort__dtypes[] = {
    {"F32", LORT_DTYPE_F32, 32}, {"F16", LORT_DTYPE_F16, 16}, {"BF16", LORT_DTYPE_BF16, 16},
    {"U8", LORT_DTYPE_U8, 8}, {"BOOL", -1, 8}, {"I8", -1, 8}, {"F4", -1, 4}, {"F6_E2M3", -1, 6},
    {"F6_E3M2", -1, 6}, {"F8_E5M2", -1, 8}, {"F8_E4M3", -1, 8}, {"F8_E8M0", -1, 8},
    {"F8_E4M3FNUZ", -1, 8}, {"F8_E5M2FNUZ", -1, 8}, {"I16", -1, 16}, {"U16", -1, 16},
    {"I32", -1, 32}, {"U32", -1, 32}, {"C64", -1, 64}, {"F64", -1, 64}, {"I64", -1, 64},
    {"U64", -1, 64}};
#define LORT__NDTYPES ((int)(sizeof lort__dtypes / sizeof lort__dtypes[0]))

LORT__PRIVATE size_t lort__align_up(size_t x) {
    return (x + (LORT__ALIGN - 1)) & ~(size_t)(LORT__ALIGN - 1);
}

typedef struct lort__st_parse {
    lort__json j;
    lort__msg *m;
    lort_st_tensor *tensors;   /* NULL: count only */
    lort_st_meta *meta;
    size_t *ix;
    char *str;
    size_t n_tensors, n_meta, str_bytes;
    const unsigned char *data;
    size_t data_size;
} lort__st_parse;

LORT__PRIVATE char *lort__st_keep(lort__st_parse *ps, const lort__span *s) {
    char *o = ps->str ? ps->str + ps->str_bytes : NULL;
    if (o) lort__js_decode(s, o);
    ps->str_bytes += s->len + 1;
    return o;
}
/* "name: " into the message */
LORT__PRIVATE void lort__st_who(lort__st_parse *ps, const lort__span *name) {
    char buf[80];
    if (name->len < sizeof buf) {
        lort__js_decode(name, buf);
        lort__msg_str(ps->m, buf);
    } else {
        lort__msg_str(ps->m, "(long name)");
    }
    lort__msg_str(ps->m, ": ");
}
LORT__PRIVATE lort_status lort__st_uint_array(lort__st_parse *ps, uint64_t *v, int cap, int *n,
                                              const char *what) {
    lort__json *j = &ps->j;
    double d;
    int iu;
    *n = 0;
    if (!lort__js_eat(j, '[')) return lort__js_fail(j, what);
    if (lort__js_eat(j, ']')) return LORT_OK;
    do {
        uint64_t u;
        lort_status st;
        if ((st = lort__js_number(j, &d, &iu, &u))) return st;
        if (!iu || u > (uint64_t)INT64_MAX) return lort__js_fail(j, what);
        if (*n >= cap) {
            lort__msg_str(ps->m, "more than ");
            lort__msg_int(ps->m, cap);
            lort__msg_str(ps->m, " entries in ");
            return lort__js_fail(j, what);
        }
        v[(*n)++] = u;
    } while (lort__js_eat(j, ','));
    if (!lort__js_eat(j, ']')) return lort__js_fail(j, what);
    return LORT_OK;
}
LORT__PRIVATE lort_status lort__st_tensor(lort__st_parse *ps, const lort__span *name) {
    lort__json *j = &ps->j;
    lort__span k, dt;
    int r, seen = 0, ndim = 0, nofs = 0, di = -1, i;
    uint64_t shape[LORT_ST_MAX_DIMS], ofs[2];
    size_t count = 1, bits;
    lort_status st;
    if ((st = lort__js_obj_begin(j))) {
        lort__st_who(ps, name);
        return st;
    }
    for (r = lort__js_obj_next(j, 1, &k); r == 1; r = lort__js_obj_next(j, 0, &k)) {
        int bit = lort__js_is(&k, "dtype") ? 1 : lort__js_is(&k, "shape") ? 2
                : lort__js_is(&k, "data_offsets") ? 4 : 0;
        if (bit & seen) {
            lort__st_who(ps, name);
            return lort__js_fail(j, "a field appears twice");
        }
        seen |= bit;
        if (bit == 1) {
            if ((st = lort__js_string(j, &dt))) return st;
            for (i = 0; i < LORT__NDTYPES; ++i)
                if (lort__js_is(&dt, lort__dtypes[i].name)) di = i;
            if (di < 0) {
                lort__st_who(ps, name);
                return lort__js_fail(j, "unknown dtype");
            }
        } else if (bit == 2) {
            if ((st = lort__st_uint_array(ps, shape, LORT_ST_MAX_DIMS, &ndim,
                                          "shape is not a list of non-negative integers")))
                return st;
        } else if (bit == 4) {
            if ((st = lort__st_uint_array(ps, ofs, 2, &nofs,
                                          "data_offsets is not [begin, end]")))
                return st;
            if (nofs != 2) return lort__js_fail(j, "data_offsets is not [begin, end]");
        } else if ((st = lort__js_skip(j))) {
            return st; /* unknown fields are ignored, as the reference does */
        }
    }
    if (r < 0) return (lort_status)r;
    if (seen != 7) {
        lort__st_who(ps, name);
        return lort__js_fail(j, "needs dtype, shape and data_offsets");
    }
    for (i = 0; i < ndim; ++i) {
        if (shape[i] > (uint64_t)LORT__SIZE_LIMIT ||
            (shape[i] && count > LORT__SIZE_LIMIT / (size_t)shape[i])) {
            lort__st_who(ps, name);
            return lort__js_fail(j, "shape product overflows");
        }
        count *= (size_t)shape[i];
    }
    bits = lort__dtypes[di].bits;
    if (count > LORT__SIZE_LIMIT / bits) {
        lort__st_who(ps, name);
        return lort__js_fail(j, "byte size overflows");
    }
    if ((count * bits) % 8u) {
        lort__st_who(ps, name);
        return lort__js_fail(j, "sub-byte tensor does not end on a byte");
    }
    if (ofs[1] > (uint64_t)LORT__SIZE_LIMIT) {
        lort__st_who(ps, name);
        return lort__js_fail(j, "data_offsets past any buffer");
    }
    if (ofs[1] < ofs[0] || ofs[1] - ofs[0] != (uint64_t)(count * bits / 8u)) {
        lort__st_who(ps, name);
        lort__msg_str(ps->m, "data_offsets [");
        lort__msg_int(ps->m, (long long)ofs[0]);
        lort__msg_str(ps->m, ", ");
        lort__msg_int(ps->m, (long long)ofs[1]);
        lort__msg_str(ps->m, ") hold ");
        lort__msg_int(ps->m, (long long)(ofs[1] >= ofs[0] ? ofs[1] - ofs[0] : 0));
        lort__msg_str(ps->m, " bytes but dtype x shape needs ");
        lort__msg_int(ps->m, (long long)(count * bits / 8u));
        return LORT_ERR_FORMAT;
    }
    if (ps->tensors) {
        lort_st_tensor *t = &ps->tensors[ps->n_tensors];
        memset(t, 0, sizeof *t);
        t->name = lort__st_keep(ps, name);
        t->dtype = lort__dtypes[di].dtype < 0 ? LORT_DTYPE_OTHER : lort__dtypes[di].dtype;
        t->ndim = ndim;
        for (i = 0; i < ndim; ++i) t->shape[i] = (int64_t)shape[i];
        t->count = count;
        t->nbytes = count * bits / 8u;
        ps->ix[ps->n_tensors] = (size_t)ofs[0]; /* begin, until the tiling check */
    } else {
        lort__st_keep(ps, name);
    }
    ++ps->n_tensors;
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__st_header(lort__st_parse *ps, const void *buf, size_t size) {
    const unsigned char *b = (const unsigned char *)buf;
    uint64_t n = 0;
    lort__span k, v;
    lort__json *j = &ps->j;
    int r, i, have_meta = 0;
    lort_status st;
    if (!buf && size) return LORT_ERR_NULL;
    if (size < 8) {
        lort__msg_str(ps->m, "shorter than the 8-byte header length");
        return LORT_ERR_FORMAT;
    }
    for (i = 7; i >= 0; --i) n = (n << 8) | b[i];
    if (n > LORT_ST_MAX_HEADER) {
        lort__msg_str(ps->m, "header length ");
        lort__msg_int(ps->m, n > (uint64_t)LLONG_MAX ? -1 : (long long)n);
        lort__msg_str(ps->m, " above the cap of 100000000");
        return LORT_ERR_FORMAT;
    }
    if (n > size - 8) {
        lort__msg_str(ps->m, "header length ");
        lort__msg_int(ps->m, (long long)n);
        lort__msg_str(ps->m, " past the end of the buffer");
        return LORT_ERR_FORMAT;
    }
    j->p = b + 8;
    j->end = b + 8 + n;
    j->m = ps->m;
    j->depth = 0;
    ps->data = b + 8 + n;
    ps->data_size = size - 8 - (size_t)n;
    lort__js_ws(j);
    if ((st = lort__js_obj_begin(j))) return st;
    for (r = lort__js_obj_next(j, 1, &k); r == 1; r = lort__js_obj_next(j, 0, &k)) {
        if (!lort__js_is(&k, "__metadata__")) {
            if ((st = lort__st_tensor(ps, &k))) return st;
            continue;
        }
        if (have_meta++) return lort__js_fail(j, "__metadata__ appears twice");
        if (lort__js_literal(j) == 2) continue;
        if ((st = lort__js_obj_begin(j))) {
            lort__msg_str(ps->m, " (__metadata__)");
            return st;
        }
        for (r = lort__js_obj_next(j, 1, &v); r == 1; r = lort__js_obj_next(j, 0, &v)) {
            lort__span val;
            if ((st = lort__js_string(j, &val))) {
                lort__msg_str(ps->m, " (__metadata__ values are strings only)");
                return st;
            }
            if (ps->meta) {
                ps->meta[ps->n_meta].key = lort__st_keep(ps, &v);
                ps->meta[ps->n_meta].value = lort__st_keep(ps, &val);
            } else {
                lort__st_keep(ps, &v);
                lort__st_keep(ps, &val);
            }
            ++ps->n_meta;
        }
        if (r < 0) return (lort_status)r;
    }
    if (r < 0) return (lort_status)r;
    lort__js_ws(j);
    if (j->p != j->end) return lort__js_fail(j, "trailing characters after the JSON header");
    return LORT_OK;
}

LORT__PRIVATE size_t lort__st_arena(size_t nt, size_t nm, size_t str) {
    return lort__align_up(nt * sizeof(lort_st_tensor)) + lort__align_up(nm * sizeof(lort_st_meta)) +
           lort__align_up(nt * sizeof(size_t)) + lort__align_up((nt > nm ? nt : nm) * sizeof(size_t)) +
           lort__align_up(str) + LORT__ALIGN;
}

LORT_DEF lort_status lort_st_read_size(const void *buf, size_t size, size_t *arena_bytes,
                                       char *msg, size_t msg_size) {
    lort__st_parse ps;
    lort__msg m;
    lort_status st;
    lort__msg_init(&m, msg, msg_size);
    if (!arena_bytes) return LORT_ERR_NULL;
    memset(&ps, 0, sizeof ps);
    ps.m = &m;
    if ((st = lort__st_header(&ps, buf, size))) return st;
    if (ps.n_tensors > (size_t)INT_MAX || ps.n_meta > (size_t)INT_MAX) {
        lort__msg_str(&m, "too many tensors");
        return LORT_ERR_FORMAT;
    }
    *arena_bytes = lort__st_arena(ps.n_tensors, ps.n_meta, ps.str_bytes);
    return LORT_OK;
}

LORT__PRIVATE int lort__st_by_name(const void *ctx, size_t a, size_t b) {
    const lort_st_tensor *t = (const lort_st_tensor *)ctx;
    return strcmp(t[a].name, t[b].name) < 0;
}
LORT__PRIVATE int lort__st_by_key(const void *ctx, size_t a, size_t b) {
    const lort_st_meta *t = (const lort_st_meta *)ctx;
    return strcmp(t[a].key, t[b].key) < 0;
}
LORT__PRIVATE int lort__st_by_begin(const void *ctx, size_t a, size_t b) {
    const size_t *begin = (const size_t *)ctx;
    return begin[a] < begin[b] || (begin[a] == begin[b] && a < b);
}

LORT_DEF lort_status lort_st_read(const void *buf, size_t size, void *arena, size_t arena_size,
                                  lort_st_file *file, char *msg, size_t msg_size) {
    lort__st_parse ps, cnt;
    lort__msg m;
    lort_status st;
    size_t need, i, *order, end = 0;
    unsigned char *a;
    lort_st_file f;
    if ((st = lort_st_read_size(buf, size, &need, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    if (!arena || !file) return LORT_ERR_NULL;
    if (arena_size < need) {
        lort__msg_str(&m, "arena smaller than lort_st_read_size");
        return LORT_ERR_WORKSPACE;
    }
    memset(&cnt, 0, sizeof cnt);
    cnt.m = &m;
    (void)lort__st_header(&cnt, buf, size); /* the counts (it succeeded above) */
    memset(&ps, 0, sizeof ps);
    ps.m = &m;
    a = (unsigned char *)arena + ((LORT__ALIGN - (uintptr_t)arena % LORT__ALIGN) % LORT__ALIGN);
    ps.tensors = (lort_st_tensor *)(void *)a;
    a += lort__align_up(cnt.n_tensors * sizeof(lort_st_tensor));
    ps.meta = (lort_st_meta *)(void *)a;
    a += lort__align_up(cnt.n_meta * sizeof(lort_st_meta));
    ps.ix = (size_t *)(void *)a;
    a += lort__align_up(cnt.n_tensors * sizeof(size_t));
    order = (size_t *)(void *)a;
    a += lort__align_up((cnt.n_tensors > cnt.n_meta ? cnt.n_tensors : cnt.n_meta) * sizeof(size_t));
    ps.str = (char *)a;
    if ((st = lort__st_header(&ps, buf, size))) return st;
    for (i = 0; i < ps.n_tensors; ++i) order[i] = i;
    lort__heap_sort(order, ps.n_tensors, lort__st_by_name, ps.tensors);
    for (i = 1; i < ps.n_tensors; ++i)
        if (strcmp(ps.tensors[order[i]].name, ps.tensors[order[i - 1]].name) == 0) {
            lort__msg_str(&m, ps.tensors[order[i]].name);
            lort__msg_str(&m, ": tensor name appears twice");
            return LORT_ERR_FORMAT;
        }
    for (i = 0; i < ps.n_meta; ++i) order[i] = i;
    lort__heap_sort(order, ps.n_meta, lort__st_by_key, ps.meta);
    for (i = 1; i < ps.n_meta; ++i)
        if (strcmp(ps.meta[order[i]].key, ps.meta[order[i - 1]].key) == 0) {
            lort__msg_str(&m, "__metadata__ key appears twice: ");
            lort__msg_str(&m, ps.meta[order[i]].key);
            return LORT_ERR_FORMAT;
        }
    /* tiling: by begin, each tensor starts where the previous ended, the last ends the buffer */
    for (i = 0; i < ps.n_tensors; ++i) order[i] = i;
    lort__heap_sort(order, ps.n_tensors, lort__st_by_begin, ps.ix);
    for (i = 0; i < ps.n_tensors; ++i) {
        const lort_st_tensor *t = &ps.tensors[order[i]];
        size_t b = ps.ix[order[i]];
        if (b != end) {
            lort__msg_str(&m, t->name);
            lort__msg_str(&m, b < end ? ": data overlaps the previous tensor's"
                                      : ": gap in the data before this tensor");
            return LORT_ERR_FORMAT;
        }
        if (t->nbytes > ps.data_size - end) {
            lort__msg_str(&m, t->name);
            lort__msg_str(&m, ": data past the end of the buffer");
            return LORT_ERR_FORMAT;
        }
        end = b + t->nbytes;
    }
    if (end != ps.data_size) {
        lort__msg_str(&m, "file not fully covered: ");
        lort__msg_int(&m, (long long)(ps.data_size - end));
        lort__msg_str(&m, " bytes after the last tensor's data");
        return LORT_ERR_FORMAT;
    }
    for (i = 0; i < ps.n_tensors; ++i) ps.tensors[i].data = ps.data + ps.ix[i];
    f.tensors = ps.tensors;
    f.n_tensors = (int)ps.n_tensors;
    f.meta = ps.meta;
    f.n_meta = (int)ps.n_meta;
    *file = f;
    return LORT_OK;
}

LORT_DEF lort_status lort_st_find(const lort_st_file *file, const char *name,
                                  const lort_st_tensor **tensor) {
    int i;
    if (!file || !name || !tensor) return LORT_ERR_NULL;
    if (file->n_tensors < 0 || (file->n_tensors && !file->tensors)) return LORT_ERR_INVALID_ARG;
    for (i = 0; i < file->n_tensors; ++i)
        if (strcmp(file->tensors[i].name, name) == 0) {
            *tensor = &file->tensors[i];
            return LORT_OK;
        }
    return LORT_ERR_NOT_FOUND;
}

LORT__PRIVATE int lort__little_endian(void) {
    const uint32_t one = 1;
    unsigned char c;
    memcpy(&c, &one, 1);
    return c == 1;
}

LORT_DEF const float *lort_st_view_f32(const lort_st_tensor *t) {
    if (!t || t->dtype != LORT_DTYPE_F32 || !lort__little_endian()) return NULL;
    if ((uintptr_t)t->data % sizeof(float)) return NULL;
    return (const float *)t->data;
}

LORT_DEF lort_status lort_st_get_f32(const lort_st_tensor *t, float *out, size_t count) {
    const unsigned char *b;
    size_t i;
    if (!t || (!out && count)) return LORT_ERR_NULL;
    if (count != t->count) return LORT_ERR_SHAPE;
    b = (const unsigned char *)t->data;
    switch (t->dtype) {
    case LORT_DTYPE_F32:
        if (lort__little_endian()) {
            if (count) memcpy(out, b, count * 4);
        } else {
            for (i = 0; i < count; ++i)
                out[i] = lort__bits_f32((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                                        (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24);
        }
        return LORT_OK;
    case LORT_DTYPE_F16:
        for (i = 0; i < count; ++i) out[i] = lort__f16_to_f32(b[2 * i] | (unsigned)b[2 * i + 1] << 8);
        return LORT_OK;
    case LORT_DTYPE_BF16:
        for (i = 0; i < count; ++i) out[i] = lort__bf16_to_f32(b[2 * i] | (unsigned)b[2 * i + 1] << 8);
        return LORT_OK;
    default: return LORT_ERR_UNSUPPORTED;
    }
}

/* ---- writer -------------------------------------------------------------------------------- */
/* Output that counts always and writes while it fits; esc: JSON-escape strings. */
typedef struct lort__out {
    unsigned char *p;
    size_t cap, len;
    int esc;
} lort__out;
LORT__PRIVATE void lort__out_bytes(lort__out *o, const void *s, size_t n) {
    if (o->p && n <= o->cap && o->len <= o->cap - n) memcpy(o->p + o->len, s, n);
    o->len += n;
}
LORT__PRIVATE void lort__out_str(lort__out *o, const char *s) {
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (o->esc && (c == '"' || c == '\\')) {
            lort__out_bytes(o, "\\", 1);
            lort__out_bytes(o, s, 1);
        } else if (o->esc && c < 0x20) {
            char u[7] = {'\\', 'u', '0', '0', 0, 0, 0};
            u[4] = (char)('0' + (c >> 4));
            u[5] = "0123456789abcdef"[c & 15];
            lort__out_bytes(o, u, 6);
        } else {
            lort__out_bytes(o, s, 1);
        }
    }
}
LORT__PRIVATE void lort__out_uint(lort__out *o, uint64_t v) {
    char t[24];
    int k = 0;
    do {
        t[k++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v);
    while (k > 0) lort__out_bytes(o, &t[--k], 1);
}
LORT__PRIVATE void lort__out_int(lort__out *o, long long v) {
    if (v < 0) lort__out_bytes(o, "-", 1);
    lort__out_uint(o, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
}

/* The writer's sources: tensor i writes its name through o (escaped by the writer) and fills
   t (t->name unused); meta i writes its key and its value. */
typedef struct lort__st_src {
    void *ctx;
    int n_tensors, n_meta;
    void (*tensor)(void *ctx, int i, lort__out *name, lort_st_write_tensor *t);
    void (*meta)(void *ctx, int i, lort__out *key, lort__out *value);
} lort__st_src;

LORT__PRIVATE size_t lort__dtype_size(int dtype) {
    return dtype == LORT_DTYPE_F32 ? 4 : dtype == LORT_DTYPE_U8 ? 1 : 2;
}
LORT__PRIVATE const char *lort__dtype_name(int dtype) {
    return dtype == LORT_DTYPE_F32 ? "F32" : dtype == LORT_DTYPE_F16 ? "F16"
         : dtype == LORT_DTYPE_BF16 ? "BF16" : "U8";
}
/* Elements of t (validated: ndim, shape >= 0, product and bytes fit). */
LORT__PRIVATE lort_status lort__wt_count(const lort_st_write_tensor *t, size_t *count) {
    size_t c = 1;
    int d;
    if (t->dtype < LORT_DTYPE_F32 || t->dtype > LORT_DTYPE_U8) return LORT_ERR_INVALID_ARG;
    if (t->ndim < 0 || t->ndim > LORT_ST_MAX_DIMS) return LORT_ERR_INVALID_ARG;
    for (d = 0; d < t->ndim; ++d) {
        if (t->shape[d] < 0) return LORT_ERR_INVALID_ARG;
        if (t->shape[d] && c > LORT__SIZE_LIMIT / 4 / (uint64_t)t->shape[d]) return LORT_ERR_OVERFLOW;
        c *= (size_t)t->shape[d];
    }
    if (c && !t->data) return LORT_ERR_NULL;
    *count = c;
    return LORT_OK;
}
/* The header JSON into w (counting when w->p is NULL); *data_bytes = the data section size. */
LORT__PRIVATE lort_status lort__st_gen_header(const lort__st_src *src, lort__out *w,
                                              size_t *data_bytes) {
    size_t ofs = 0, c = 0;
    int i, d;
    lort_status st;
    lort__out_str(w, "{");
    if (src->n_meta > 0) {
        lort__out_str(w, "\"__metadata__\":{");
        for (i = 0; i < src->n_meta; ++i) {
            lort__out k;
            if (i) lort__out_str(w, ",");
            lort__out_str(w, "\"");
            k = *w;
            k.esc = 1;
            src->meta(src->ctx, i, &k, NULL);
            w->len = k.len;
            lort__out_str(w, "\":\"");
            k = *w;
            k.esc = 1;
            src->meta(src->ctx, i, NULL, &k);
            w->len = k.len;
            lort__out_str(w, "\"");
        }
        lort__out_str(w, "}");
    }
    for (i = 0; i < src->n_tensors; ++i) {
        lort_st_write_tensor t;
        lort__out nm;
        memset(&t, 0, sizeof t);
        if (i || src->n_meta > 0) lort__out_str(w, ",");
        lort__out_str(w, "\"");
        nm = *w;
        nm.esc = 1;
        src->tensor(src->ctx, i, &nm, &t);
        w->len = nm.len;
        if ((st = lort__wt_count(&t, &c))) return st;
        lort__out_str(w, "\":{\"dtype\":\"");
        lort__out_str(w, lort__dtype_name(t.dtype));
        lort__out_str(w, "\",\"shape\":[");
        for (d = 0; d < t.ndim; ++d) {
            if (d) lort__out_str(w, ",");
            lort__out_int(w, (long long)t.shape[d]);
        }
        lort__out_str(w, "],\"data_offsets\":[");
        lort__out_uint(w, ofs);
        lort__out_str(w, ",");
        if (c * lort__dtype_size(t.dtype) > LORT__SIZE_LIMIT - ofs) return LORT_ERR_OVERFLOW;
        ofs += c * lort__dtype_size(t.dtype);
        lort__out_uint(w, ofs);
        lort__out_str(w, "]}");
    }
    lort__out_str(w, "}");
    *data_bytes = ofs;
    return LORT_OK;
}
/* Writes the file (out->p NULL: only sizes it into out->len). */
LORT__PRIVATE lort_status lort__st_emit(const lort__st_src *src, lort__out *out) {
    lort__out w;
    size_t hlen, pad, data = 0, total, c = 0, e;
    int i;
    unsigned char *dst;
    lort_status st;
    memset(&w, 0, sizeof w);
    if ((st = lort__st_gen_header(src, &w, &data))) return st;
    hlen = w.len;
    pad = (8u - (8u + hlen) % 8u) % 8u;
    if (hlen + pad > LORT_ST_MAX_HEADER) return LORT_ERR_OVERFLOW;
    if (data > LORT__SIZE_LIMIT - 8 - hlen - pad) return LORT_ERR_OVERFLOW;
    total = 8 + hlen + pad + data;
    if (!out->p) {
        out->len = total;
        return LORT_OK;
    }
    if (out->cap < total) return LORT_ERR_WORKSPACE;
    for (i = 0; i < 8; ++i) out->p[i] = (unsigned char)(((uint64_t)(hlen + pad) >> (8 * i)) & 255u);
    memset(&w, 0, sizeof w);
    w.p = out->p + 8;
    w.cap = hlen;
    (void)lort__st_gen_header(src, &w, &data);
    LORT_ASSERT(w.len == hlen);
    memset(out->p + 8 + hlen, ' ', pad);
    dst = out->p + 8 + hlen + pad;
    for (i = 0; i < src->n_tensors; ++i) {
        lort_st_write_tensor t;
        lort__out nm;
        memset(&t, 0, sizeof t);
        memset(&nm, 0, sizeof nm);
        src->tensor(src->ctx, i, &nm, &t);
        (void)lort__wt_count(&t, &c);
        if (t.dtype == LORT_DTYPE_U8 || (t.dtype == LORT_DTYPE_F32 && lort__little_endian())) {
            if (c) memcpy(dst, t.data, c * lort__dtype_size(t.dtype));
            dst += c * lort__dtype_size(t.dtype);
            continue;
        }
        for (e = 0; e < c; ++e) {
            float v = ((const float *)t.data)[e];
            if (t.dtype == LORT_DTYPE_F32) {
                uint32_t u = lort__f32_bits(v);
                dst[0] = (unsigned char)u;
                dst[1] = (unsigned char)(u >> 8);
                dst[2] = (unsigned char)(u >> 16);
                dst[3] = (unsigned char)(u >> 24);
                dst += 4;
            } else {
                unsigned hb = t.dtype == LORT_DTYPE_F16 ? lort__f32_to_f16(v) : lort__f32_to_bf16(v);
                dst[0] = (unsigned char)hb;
                dst[1] = (unsigned char)(hb >> 8);
                dst += 2;
            }
        }
    }
    out->len = total;
    return LORT_OK;
}

typedef struct lort__st_arrays {
    const lort_st_write_tensor *t;
    const lort_st_meta *m;
} lort__st_arrays;
LORT__PRIVATE void lort__st_arr_tensor(void *ctx, int i, lort__out *name,
                                       lort_st_write_tensor *t) {
    const lort__st_arrays *a = (const lort__st_arrays *)ctx;
    *t = a->t[i];
    lort__out_str(name, a->t[i].name);
}
LORT__PRIVATE void lort__st_arr_meta(void *ctx, int i, lort__out *key, lort__out *value) {
    const lort__st_arrays *a = (const lort__st_arrays *)ctx;
    if (key) lort__out_str(key, a->m[i].key);
    if (value) lort__out_str(value, a->m[i].value);
}
LORT__PRIVATE lort_status lort__st_write_check(const lort_st_write_tensor *tensors, int n_tensors,
                                               const lort_st_meta *meta, int n_meta,
                                               lort__msg *m) {
    int i, q;
    size_t c;
    lort_status st;
    if (n_tensors < 0 || n_meta < 0) return LORT_ERR_INVALID_ARG;
    if ((n_tensors && !tensors) || (n_meta && !meta)) return LORT_ERR_NULL;
    for (i = 0; i < n_tensors; ++i) {
        if (!tensors[i].name) return LORT_ERR_NULL;
        if (!tensors[i].name[0] || strcmp(tensors[i].name, "__metadata__") == 0) {
            lort__msg_str(m, "tensor ");
            lort__msg_int(m, i);
            lort__msg_str(m, ": empty or reserved name");
            return LORT_ERR_INVALID_ARG;
        }
        if ((st = lort__wt_count(&tensors[i], &c))) {
            lort__msg_str(m, tensors[i].name);
            lort__msg_str(m, ": bad dtype, ndim or shape");
            return st;
        }
        for (q = 0; q < i; ++q)
            if (strcmp(tensors[q].name, tensors[i].name) == 0) {
                lort__msg_str(m, tensors[i].name);
                lort__msg_str(m, ": name appears twice");
                return LORT_ERR_INVALID_ARG;
            }
    }
    for (i = 0; i < n_meta; ++i) {
        if (!meta[i].key || !meta[i].value) return LORT_ERR_NULL;
        for (q = 0; q < i; ++q)
            if (strcmp(meta[q].key, meta[i].key) == 0) {
                lort__msg_str(m, meta[i].key);
                lort__msg_str(m, ": metadata key appears twice");
                return LORT_ERR_INVALID_ARG;
            }
    }
    return LORT_OK;
}

LORT_DEF lort_status lort_st_write_size(const lort_st_write_tensor *tensors, int n_tensors,
                                        const lort_st_meta *meta, int n_meta, size_t *bytes,
                                        char *msg, size_t msg_size) {
    lort__msg m;
    lort__st_arrays a;
    lort__st_src src;
    lort__out o;
    lort_status st;
    lort__msg_init(&m, msg, msg_size);
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__st_write_check(tensors, n_tensors, meta, n_meta, &m))) return st;
    a.t = tensors;
    a.m = meta;
    src.ctx = &a;
    src.n_tensors = n_tensors;
    src.n_meta = n_meta;
    src.tensor = lort__st_arr_tensor;
    src.meta = lort__st_arr_meta;
    memset(&o, 0, sizeof o);
    if ((st = lort__st_emit(&src, &o))) return st;
    *bytes = o.len;
    return LORT_OK;
}

LORT_DEF lort_status lort_st_write(void *buf, size_t buf_size,
                                   const lort_st_write_tensor *tensors, int n_tensors,
                                   const lort_st_meta *meta, int n_meta, size_t *written,
                                   char *msg, size_t msg_size) {
    size_t need;
    lort__st_arrays a;
    lort__st_src src;
    lort__out o;
    lort_status st;
    if ((st = lort_st_write_size(tensors, n_tensors, meta, n_meta, &need, msg, msg_size)))
        return st;
    if (!buf) return LORT_ERR_NULL;
    if (buf_size < need) return LORT_ERR_WORKSPACE;
    a.t = tensors;
    a.m = meta;
    src.ctx = &a;
    src.n_tensors = n_tensors;
    src.n_meta = n_meta;
    src.tensor = lort__st_arr_tensor;
    src.meta = lort__st_arr_meta;
    memset(&o, 0, sizeof o);
    o.p = (unsigned char *)buf;
    o.cap = buf_size;
    if ((st = lort__st_emit(&src, &o))) return st;
    if (written) *written = o.len;
    return LORT_OK;
}

#ifndef LORT_NO_STDIO
#include <stdio.h>
LORT_DEF lort_status lort_file_read(const char *path, const lort_allocator *allocator,
                                    void **data, size_t *size) {
    FILE *f;
    long len;
    void *p = NULL;
    lort_status st;
    if (!path || !data || !size) return LORT_ERR_NULL;
    f = fopen(path, "rb");
    if (!f) return LORT_ERR_NOT_FOUND;
    if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return LORT_ERR_FORMAT;
    }
    if ((st = lort_alloc(allocator, len ? (size_t)len : 1, &p))) {
        fclose(f);
        return st;
    }
    if (len && fread(p, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        lort_free(allocator, p);
        return LORT_ERR_FORMAT;
    }
    fclose(f);
    *data = p;
    *size = (size_t)len;
    return LORT_OK;
}
LORT_DEF lort_status lort_file_write(const char *path, const void *data, size_t size) {
    FILE *f;
    int ok;
    if (!path || (!data && size)) return LORT_ERR_NULL;
    f = fopen(path, "wb");
    if (!f) return LORT_ERR_NOT_FOUND;
    ok = (size == 0 || fwrite(data, 1, size, f) == size);
    ok = (fclose(f) == 0) && ok;
    return ok ? LORT_OK : LORT_ERR_OUT_OF_MEMORY;
}
#endif
// >>files ================================================================================ impl

/* ---- descs as text: every field of every family's desc, by name ---------------------------- */
typedef struct lort__field {
    const char *key;
    char type;       /* 'i' int, 'f' float (IEEE bits in hex), 'u' uint64_t, 'x' unsigned */
    size_t offset;   /* in lort_adapter */
    int count;       /* array length (1 for a scalar) */
} lort__field;
#define LORT__FO(m) offsetof(lort_adapter, desc.m)
#define LORT__SVD(k, p)                                                                    \
    {"svd.exact", 'i', LORT__FO(k.svd.exact), 1}, {"svd.oversample", 'i', LORT__FO(k.svd.oversample), 1}, \
    {"svd.power_iters", 'i', LORT__FO(k.svd.power_iters), 1}, {"svd.no_shift", 'i', LORT__FO(k.svd.no_shift), 1}, \
    {"svd.max_sweeps", 'i', LORT__FO(k.svd.max_sweeps), 1}, {"svd.seed", 'u', LORT__FO(k.svd.seed), 1}
#define LORT__TT(k, t, p)                                                                  \
    {p ".rows", 'i', LORT__FO(k.t.rows), 1}, {p ".cols", 'i', LORT__FO(k.t.cols), 1},    \
    {p ".n_cores", 'i', LORT__FO(k.t.n_cores), 1}, {p ".modes", 'i', LORT__FO(k.t.modes), LORT_TT_MAX_CORES}, \
    {p ".ranks", 'i', LORT__FO(k.t.ranks), LORT_TT_MAX_CORES + 1}, {p ".rank", 'i', LORT__FO(k.t.rank), 1}
static const lort__field lort__fields_lora[] = {
    {"d_in", 'i', LORT__FO(lora.d_in), 1}, {"d_out", 'i', LORT__FO(lora.d_out), 1},
    {"r", 'i', LORT__FO(lora.r), 1}, {"alpha", 'f', LORT__FO(lora.alpha), 1},
    {"rslora", 'i', LORT__FO(lora.rslora), 1}, {"dropout", 'f', LORT__FO(lora.dropout), 1},
    {"dropout_seed", 'u', LORT__FO(lora.dropout_seed), 1}, {"init", 'i', LORT__FO(lora.init), 1},
    {NULL, 0, 0, 0}};
static const lort__field lort__fields_loraxs[] = {
    {"d_in", 'i', LORT__FO(loraxs.d_in), 1}, {"d_out", 'i', LORT__FO(loraxs.d_out), 1},
    {"r", 'i', LORT__FO(loraxs.r), 1}, {"alpha", 'f', LORT__FO(loraxs.alpha), 1},
    {"rslora", 'i', LORT__FO(loraxs.rslora), 1}, {"dropout", 'f', LORT__FO(loraxs.dropout), 1},
    {"dropout_seed", 'u', LORT__FO(loraxs.dropout_seed), 1},
    {"init_std", 'f', LORT__FO(loraxs.init_std), 1}, LORT__SVD(loraxs, 0), {NULL, 0, 0, 0}};
static const lort__field lort__fields_tt_rep[] = {
    {"d_in", 'i', LORT__FO(tt_rep.d_in), 1}, {"d_out", 'i', LORT__FO(tt_rep.d_out), 1},
    {"r", 'i', LORT__FO(tt_rep.r), 1}, {"alpha", 'f', LORT__FO(tt_rep.alpha), 1},
    {"dropout", 'f', LORT__FO(tt_rep.dropout), 1},
    {"dropout_seed", 'u', LORT__FO(tt_rep.dropout_seed), 1},
    LORT__TT(tt_rep, A, "A"), LORT__TT(tt_rep, B, "B"), {NULL, 0, 0, 0}};
static const lort__field lort__fields_tt_adp[] = {
    {"hidden", 'i', LORT__FO(tt_adp.hidden), 1}, {"bottleneck", 'i', LORT__FO(tt_adp.bottleneck), 1},
    {"scale", 'f', LORT__FO(tt_adp.scale), 1}, {"act", 'i', LORT__FO(tt_adp.act), 1},
    {"placement", 'i', LORT__FO(tt_adp.placement), 1}, {"dropout", 'f', LORT__FO(tt_adp.dropout), 1},
    {"dropout_seed", 'u', LORT__FO(tt_adp.dropout_seed), 1},
    LORT__TT(tt_adp, down, "down"), LORT__TT(tt_adp, up, "up"), {NULL, 0, 0, 0}};
static const lort__field lort__fields_cp[] = {
    {"d", 'i', LORT__FO(cp.d), 1}, {"heads", 'i', LORT__FO(cp.heads), 1},
    {"layers", 'i', LORT__FO(cp.layers), 1}, {"matrices", 'i', LORT__FO(cp.matrices), 1},
    {"r", 'i', LORT__FO(cp.r), 1}, {"alpha", 'f', LORT__FO(cp.alpha), 1},
    {"rslora", 'i', LORT__FO(cp.rslora), 1}, {"dropout", 'f', LORT__FO(cp.dropout), 1},
    {"dropout_seed", 'u', LORT__FO(cp.dropout_seed), 1}, {"head_side", 'i', LORT__FO(cp.head_side), 1},
    {"kv_heads", 'i', LORT__FO(cp.kv_heads), 1}, {"kv_matrices", 'x', LORT__FO(cp.kv_matrices), 1},
    {"init_scale", 'f', LORT__FO(cp.init_scale), 1}, {NULL, 0, 0, 0}};
static const lort__field lort__fields_tucker[] = {
    {"d", 'i', LORT__FO(tucker.d), 1}, {"heads", 'i', LORT__FO(tucker.heads), 1},
    {"layers", 'i', LORT__FO(tucker.layers), 1}, {"matrices", 'i', LORT__FO(tucker.matrices), 1},
    {"r1", 'i', LORT__FO(tucker.r1), 1}, {"r2", 'i', LORT__FO(tucker.r2), 1},
    {"rh", 'i', LORT__FO(tucker.rh), 1}, {"rl", 'i', LORT__FO(tucker.rl), 1},
    {"rm", 'i', LORT__FO(tucker.rm), 1}, {"alpha", 'f', LORT__FO(tucker.alpha), 1},
    {"rslora", 'i', LORT__FO(tucker.rslora), 1}, {"dropout", 'f', LORT__FO(tucker.dropout), 1},
    {"dropout_seed", 'u', LORT__FO(tucker.dropout_seed), 1},
    {"head_side", 'i', LORT__FO(tucker.head_side), 1}, {"kv_heads", 'i', LORT__FO(tucker.kv_heads), 1},
    {"kv_matrices", 'x', LORT__FO(tucker.kv_matrices), 1}, {"init", 'i', LORT__FO(tucker.init), 1},
    {NULL, 0, 0, 0}};
static const lort__field lort__fields_mpo[] = {
    {"d_in", 'i', LORT__FO(mpo.d_in), 1}, {"d_out", 'i', LORT__FO(mpo.d_out), 1},
    {"n_cores", 'i', LORT__FO(mpo.n_cores), 1},
    {"row_factors", 'i', LORT__FO(mpo.row_factors), LORT_MPO_MAX_CORES},
    {"col_factors", 'i', LORT__FO(mpo.col_factors), LORT_MPO_MAX_CORES},
    {"bonds", 'i', LORT__FO(mpo.bonds), LORT_MPO_MAX_CORES + 1}, {"bond", 'i', LORT__FO(mpo.bond), 1},
    {"path", 'i', LORT__FO(mpo.path), 1}, {"residual", 'i', LORT__FO(mpo.residual), 1},
    LORT__SVD(mpo, 0), {NULL, 0, 0, 0}};
static const char *const lort__kind_names[8] = {NULL, "lora", "loraxs", "tt_rep", "mpo", "cp",
                                                "tucker", "tt_adp"};
LORT__PRIVATE const lort__field *lort__kind_fields(int kind) {
    switch (kind) {
    case LORT_KIND_LORA: return lort__fields_lora;
    case LORT_KIND_LORAXS: return lort__fields_loraxs;
    case LORT_KIND_TT_REP: return lort__fields_tt_rep;
    case LORT_KIND_TT_ADP: return lort__fields_tt_adp;
    case LORT_KIND_CP: return lort__fields_cp;
    case LORT_KIND_TUCKER: return lort__fields_tucker;
    case LORT_KIND_MPO: return lort__fields_mpo;
    default: return NULL;
    }
}
LORT__PRIVATE void lort__out_hex32(lort__out *o, uint32_t u) {
    char t[11];
    int i;
    t[0] = '0';
    t[1] = 'x';
    for (i = 0; i < 8; ++i) t[2 + i] = "0123456789abcdef"[(u >> (28 - 4 * i)) & 15u];
    t[10] = '\0';
    lort__out_str(o, t);
}
/* "kind=cp d=16 heads=2 ..." */
LORT__PRIVATE void lort__desc_text(const lort_adapter *a, lort__out *o) {
    const lort__field *f = lort__kind_fields((int)a->kind);
    const unsigned char *base = (const unsigned char *)a;
    int k;
    lort__out_str(o, "kind=");
    lort__out_str(o, lort__kind_names[(unsigned)a->kind & 7u]);
    for (; f && f->key; ++f) {
        lort__out_str(o, " ");
        lort__out_str(o, f->key);
        lort__out_str(o, "=");
        for (k = 0; k < f->count; ++k) {
            const unsigned char *p = base + f->offset;
            if (k) lort__out_str(o, ",");
            if (f->type == 'i') {
                int v;
                memcpy(&v, p + (size_t)k * sizeof(int), sizeof v);
                lort__out_int(o, v);
            } else if (f->type == 'x') {
                unsigned v;
                memcpy(&v, p, sizeof v);
                lort__out_uint(o, v);
            } else if (f->type == 'u') {
                uint64_t v;
                memcpy(&v, p, sizeof v);
                lort__out_uint(o, v);
            } else {
                float v;
                memcpy(&v, p, sizeof v);
                lort__out_hex32(o, lort__f32_bits(v));
            }
        }
    }
}
/* Parses an unsigned decimal (or 0x hex when hex) from [*p, end) up to a delimiter. */
LORT__PRIVATE int lort__parse_u64(const char **p, const char *end, int hex, uint64_t *v) {
    const char *s = *p;
    uint64_t x = 0;
    int n = 0;
    if (hex) {
        if (end - s < 3 || s[0] != '0' || s[1] != 'x') return 0;
        s += 2;
        for (; s < end && n < 9; ++s, ++n) {
            unsigned c = (unsigned char)*s, h;
            if (c >= '0' && c <= '9') h = c - '0';
            else if (c >= 'a' && c <= 'f') h = c - 'a' + 10u;
            else break;
            x = x * 16u + h;
        }
        if (n == 0 || n > 8) return 0;
    } else {
        for (; s < end && *s >= '0' && *s <= '9'; ++s, ++n) {
            unsigned dg = (unsigned)(*s - '0');
            if (x > (UINT64_MAX - dg) / 10u) return 0;
            x = x * 10u + dg;
        }
        if (n == 0) return 0;
    }
    *p = s;
    *v = x;
    return 1;
}
/* a (zeroed by the caller) from "kind=... key=value ..." */
LORT__PRIVATE lort_status lort__desc_parse(const char *s, lort_adapter *a, lort__msg *m) {
    const char *p = s, *end = s + strlen(s);
    const lort__field *fields = NULL;
    int kind;
    if (strncmp(p, "kind=", 5) != 0) {
        lort__msg_str(m, "desc does not start with kind=");
        return LORT_ERR_FORMAT;
    }
    p += 5;
    for (kind = 1; kind < 8; ++kind) {
        size_t n = strlen(lort__kind_names[kind]);
        if ((size_t)(end - p) >= n && memcmp(p, lort__kind_names[kind], n) == 0 &&
            (p + n == end || p[n] == ' ')) {
            fields = lort__kind_fields(kind);
            p += n;
            break;
        }
    }
    if (!fields) {
        lort__msg_str(m, "unknown kind");
        return LORT_ERR_UNSUPPORTED;
    }
    a->kind = (lort_kind)kind;
    while (p < end) {
        const char *k, *eq;
        const lort__field *f;
        int i;
        if (*p++ != ' ') break;
        k = p;
        while (p < end && *p != '=' && *p != ' ') ++p;
        eq = p;
        if (p >= end || *p != '=') break;
        ++p;
        for (f = fields; f->key; ++f)
            if ((size_t)(eq - k) == strlen(f->key) && memcmp(k, f->key, (size_t)(eq - k)) == 0)
                break;
        if (!f->key) {
            lort__msg_str(m, "unknown desc field");
            return LORT_ERR_FORMAT;
        }
        for (i = 0; i < f->count; ++i) {
            unsigned char *dst = (unsigned char *)a + f->offset;
            uint64_t u;
            int neg = 0;
            if (i) {
                if (p >= end || *p != ',') break;
                ++p;
            }
            if (f->type == 'i' && p < end && *p == '-') {
                neg = 1;
                ++p;
            }
            if (!lort__parse_u64(&p, end, f->type == 'f', &u)) goto bad;
            if (f->type == 'i') {
                int v;
                if (u > (uint64_t)INT_MAX + (uint64_t)neg) goto bad;
                v = neg ? (int)(0 - (long long)u) : (int)u;
                memcpy(dst + (size_t)i * sizeof(int), &v, sizeof v);
            } else if (f->type == 'x') {
                unsigned v;
                if (u > UINT_MAX) goto bad;
                v = (unsigned)u;
                memcpy(dst, &v, sizeof v);
            } else if (f->type == 'u') {
                memcpy(dst, &u, sizeof u);
            } else {
                float v = lort__bits_f32((uint32_t)u);
                memcpy(dst, &v, sizeof v);
            }
        }
        if (p < end && *p != ' ') goto bad;
        continue;
    bad:
        lort__msg_str(m, "bad value of desc field ");
        lort__msg_str(m, f->key);
        return LORT_ERR_FORMAT;
    }
    if (p < end) {
        lort__msg_str(m, "malformed desc text");
        return LORT_ERR_FORMAT;
    }
    return LORT_OK;
}

/* ---- lort_set_save ----------------------------------------------------------------------- */
typedef struct lort__set_ctx {
    const lort_adapter_set *set;
    int entry, first, nblocks;   /* cursor: tensors of `entry` start at index `first` */
    lort_block blocks[2 * LORT_TT_MAX_CORES + 2];
} lort__set_ctx;
LORT__PRIVATE void lort__set_seek(lort__set_ctx *c, int i) {
    if (i < c->first) {
        c->entry = -1;
        c->first = 0;
        c->nblocks = 0;
    }
    while (i >= c->first + c->nblocks) {
        c->first += c->nblocks;
        ++c->entry;
        (void)lort_adapter_blocks(&c->set->entries[c->entry], c->blocks,
                                  2 * LORT_TT_MAX_CORES + 2, &c->nblocks);
    }
}
LORT__PRIVATE void lort__set_tensor(void *ctx, int i, lort__out *name, lort_st_write_tensor *t) {
    lort__set_ctx *c = (lort__set_ctx *)ctx;
    const lort_block *b;
    const lort_adapter *e;
    int d;
    lort__set_seek(c, i);
    b = &c->blocks[i - c->first];
    e = &c->set->entries[c->entry];
    lort__out_uint(name, (uint64_t)c->entry);
    lort__out_str(name, ".");
    lort__out_str(name, b->name);
    t->dtype = b->bytes_only ? LORT_DTYPE_U8 : LORT_DTYPE_F32;
    t->ndim = b->ndim;
    for (d = 0; d < b->ndim; ++d) t->shape[d] = b->shape[d];
    if (b->bytes_only) t->data = e->frozen;
    else t->data = (b->vector == LORT_BLOCK_FROZEN ? (const float *)e->frozen : e->params) + b->offset;
}
LORT__PRIVATE void lort__set_meta(void *ctx, int i, lort__out *key, lort__out *value) {
    const lort__set_ctx *c = (const lort__set_ctx *)ctx;
    const lort_adapter_set *s = c->set;
    int q;
    if (i == 0) {
        if (key) lort__out_str(key, "lortensor.format");
        if (value) lort__out_str(value, "1");
    } else if (i == 1) {
        if (key) lort__out_str(key, "lortensor.entries");
        if (value) lort__out_uint(value, (uint64_t)s->n_entries);
    } else if (i == 2) {
        if (key) lort__out_str(key, "lortensor.sites");
        for (q = 0; value && q < s->n_sites; ++q) {
            const lort_set_site *st = &s->sites[q];
            lort__out_int(value, st->entry);
            lort__out_str(value, " ");
            lort__out_int(value, st->layer);
            lort__out_str(value, " ");
            lort__out_int(value, st->matrix);
            if (st->name) {
                lort__out_str(value, " ");
                lort__out_str(value, st->name);
            }
            lort__out_str(value, "\n");
        }
    } else {
        if (key) {
            lort__out_str(key, "lortensor.entry.");
            lort__out_uint(key, (uint64_t)(i - 3));
        }
        if (value) lort__desc_text(&s->entries[i - 3], value);
    }
}
/* Validates the set for saving and counts its tensors. */
LORT__PRIVATE lort_status lort__set_save_check(const lort_adapter_set *set, lort__set_ctx *c,
                                               lort__st_src *src, lort__msg *m, char *msg,
                                               size_t msg_size) {
    int i, nb, total = 0;
    lort_status st;
    if ((st = lort_set_validate(set, msg, msg_size))) return st;
    for (i = 0; i < set->n_entries; ++i) {
        const lort_adapter *e = &set->entries[i];
        lort_adapter_sizes sz;
        if ((st = lort_adapter_blocks(e, NULL, 0, &nb)) ||
            (st = lort_adapter_sizes_query(e, 1, &sz))) {
            lort__msg_str(m, "entry ");
            lort__msg_int(m, i);
            lort__msg_str(m, ": ");
            lort__msg_str(m, lort_status_string(st));
            return st;
        }
        if (!e->params || (sz.frozen_bytes && !e->frozen)) {
            lort__msg_str(m, "entry ");
            lort__msg_int(m, i);
            lort__msg_str(m, ": params or frozen is NULL");
            return LORT_ERR_NULL;
        }
        if (total > INT_MAX - nb) return LORT_ERR_OVERFLOW;
        total += nb;
    }
    for (i = 0; i < set->n_sites; ++i) {
        const char *n = set->sites[i].name;
        for (; n && *n; ++n)
            if (*n == '\n') {
                lort__msg_str(m, "site ");
                lort__msg_int(m, i);
                lort__msg_str(m, ": a newline in the name");
                return LORT_ERR_INVALID_ARG;
            }
    }
    memset(c, 0, sizeof *c);
    c->set = set;
    c->entry = -1;
    src->ctx = c;
    src->n_tensors = total;
    src->n_meta = 3 + set->n_entries;
    src->tensor = lort__set_tensor;
    src->meta = lort__set_meta;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_save_size(const lort_adapter_set *set, size_t *bytes, char *msg,
                                        size_t msg_size) {
    lort__set_ctx c;
    lort__st_src src;
    lort__out o;
    lort__msg m;
    lort_status st;
    lort__msg_init(&m, msg, msg_size);
    if (!bytes) return LORT_ERR_NULL;
    if ((st = lort__set_save_check(set, &c, &src, &m, msg, msg_size))) return st;
    memset(&o, 0, sizeof o);
    if ((st = lort__st_emit(&src, &o))) return st;
    *bytes = o.len;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_save(const lort_adapter_set *set, void *buf, size_t buf_size,
                                   size_t *written, char *msg, size_t msg_size) {
    lort__set_ctx c;
    lort__st_src src;
    lort__out o;
    lort__msg m;
    size_t need;
    lort_status st;
    if ((st = lort_set_save_size(set, &need, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    if (!buf) return LORT_ERR_NULL;
    if (buf_size < need) {
        lort__msg_str(&m, "buffer smaller than lort_set_save_size");
        return LORT_ERR_WORKSPACE;
    }
    (void)lort__set_save_check(set, &c, &src, &m, NULL, 0);
    memset(&o, 0, sizeof o);
    o.p = (unsigned char *)buf;
    o.cap = buf_size;
    if ((st = lort__st_emit(&src, &o))) return st;
    if (written) *written = o.len;
    return LORT_OK;
}

/* ---- lort_set_load ----------------------------------------------------------------------- */
/* Counts of a safetensors header without an arena. */
LORT__PRIVATE lort_status lort__st_counts(const void *buf, size_t size, lort__st_parse *ps,
                                          lort__msg *m) {
    memset(ps, 0, sizeof *ps);
    ps->m = m;
    return lort__st_header(ps, buf, size);
}
LORT__PRIVATE const char *lort__st_meta_get(const lort_st_file *f, const char *key) {
    int i;
    for (i = 0; i < f->n_meta; ++i)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}
/* Bump allocation from an aligned arena; NULL when it does not fit. */
typedef struct lort__arena {
    unsigned char *p;
    size_t cap, used;
} lort__arena;
LORT__PRIVATE void *lort__arena_take(lort__arena *a, size_t bytes) {
    size_t at = lort__align_up(a->used);
    void *r;
    if (at > a->cap || bytes > a->cap - at) return NULL;
    r = a->p + at;
    a->used = at + bytes;
    return r;
}
LORT__PRIVATE void lort__arena_init(lort__arena *a, void *mem, size_t size) {
    size_t pad = (LORT__ALIGN - (uintptr_t)mem % LORT__ALIGN) % LORT__ALIGN;
    a->p = (unsigned char *)mem + (pad < size ? pad : size);
    a->cap = pad < size ? size - pad : 0;
    a->used = 0;
}

LORT_DEF lort_status lort_set_load_size(const void *buf, size_t size, size_t *arena_bytes,
                                        char *msg, size_t msg_size) {
    lort__st_parse ps;
    lort__msg m;
    lort_status st;
    size_t nt, sites, bound;
    lort__msg_init(&m, msg, msg_size);
    if (!arena_bytes) return LORT_ERR_NULL;
    if ((st = lort__st_counts(buf, size, &ps, &m))) return st;
    nt = ps.n_tensors;
    sites = ps.str_bytes + 1;
    bound = lort__st_arena(nt, ps.n_meta, ps.str_bytes);
    /* entries (<= tensors), sites (<= one per byte of text), the data as floats, alignment */
    if (nt > LORT__SIZE_LIMIT / 1024 || sites > LORT__SIZE_LIMIT / 1024 ||
        ps.data_size > LORT__SIZE_LIMIT / 2)
        return LORT_ERR_OVERFLOW;
    bound += nt * (sizeof(lort_adapter) + 3 * LORT__ALIGN) + sites * sizeof(lort_set_site) +
             ps.data_size + 4 * LORT__ALIGN;
    *arena_bytes = bound;
    return LORT_OK;
}

LORT__PRIVATE lort_status lort__parse_int_word(const char **p, const char *end, int *v) {
    uint64_t u;
    int neg = 0;
    if (*p < end && **p == '-') {
        neg = 1;
        ++*p;
    }
    if (!lort__parse_u64(p, end, 0, &u) || u > (uint64_t)INT_MAX) return LORT_ERR_FORMAT;
    *v = neg ? -(int)u : (int)u;
    return LORT_OK;
}

LORT_DEF lort_status lort_set_load(const void *buf, size_t size, void *arena, size_t arena_size,
                                   lort_adapter_set *set, char *msg, size_t msg_size) {
    lort__msg m;
    lort_status st;
    size_t need, stbytes;
    lort__arena ar;
    lort_st_file f;
    const char *v;
    char *sites_txt, *p;
    uint64_t ne = 0;
    int E, S = 0, i, used = 0, cursor = 0;
    lort_adapter *entries;
    lort_set_site *sites;
    lort_adapter_set out;
    void *stmem;
    if ((st = lort_set_load_size(buf, size, &need, msg, msg_size))) return st;
    lort__msg_init(&m, msg, msg_size);
    if (!arena || !set) return LORT_ERR_NULL;
    if (arena_size < need) {
        lort__msg_str(&m, "arena smaller than lort_set_load_size");
        return LORT_ERR_WORKSPACE;
    }
    lort__arena_init(&ar, arena, arena_size);
    if ((st = lort_st_read_size(buf, size, &stbytes, msg, msg_size))) return st;
    stmem = lort__arena_take(&ar, stbytes);
    if ((st = lort_st_read(buf, size, stmem, stbytes, &f, msg, msg_size))) return st;
    v = lort__st_meta_get(&f, "lortensor.format");
    if (!v) {
        lort__msg_str(&m, "not a lortensor set file: no lortensor.format in __metadata__");
        return LORT_ERR_FORMAT;
    }
    if (strcmp(v, "1") != 0) {
        lort__msg_str(&m, "lortensor.format ");
        lort__msg_str(&m, v);
        lort__msg_str(&m, " is newer than this reader (1)");
        return LORT_ERR_UNSUPPORTED;
    }
    v = lort__st_meta_get(&f, "lortensor.entries");
    {
        const char *q = v;
        if (!v || !lort__parse_u64(&q, v + strlen(v), 0, &ne) || *q || ne > (uint64_t)f.n_tensors) {
            lort__msg_str(&m, "lortensor.entries missing or above the number of tensors");
            return LORT_ERR_FORMAT;
        }
    }
    E = (int)ne;
    v = lort__st_meta_get(&f, "lortensor.sites");
    if (!v) {
        lort__msg_str(&m, "no lortensor.sites in __metadata__");
        return LORT_ERR_FORMAT;
    }
    sites_txt = (char *)(uintptr_t)v; /* the decoded copy lives in our arena: split it in place */
    for (p = sites_txt; *p; ++p) S += *p == '\n';
    entries = (lort_adapter *)lort__arena_take(&ar, (size_t)E * sizeof(lort_adapter) + 1);
    sites = (lort_set_site *)lort__arena_take(&ar, (size_t)S * sizeof(lort_set_site) + 1);
    if (!entries || !sites) {
        lort__msg_str(&m, "too many sites for the arena");
        return LORT_ERR_FORMAT;
    }
    for (i = 0; i < E; ++i) {
        char key[40];
        lort__out ko;
        lort_block blocks[2 * LORT_TT_MAX_CORES + 2];
        lort_adapter_sizes sz;
        lort_adapter *e = &entries[i];
        int nb, b;
        memset(&ko, 0, sizeof ko);
        ko.p = (unsigned char *)key;
        ko.cap = sizeof key - 1;
        lort__out_str(&ko, "lortensor.entry.");
        lort__out_uint(&ko, (uint64_t)i);
        key[ko.len] = '\0';
        memset(e, 0, sizeof *e);
        lort__msg_str(&m, key);
        lort__msg_str(&m, ": ");
        v = lort__st_meta_get(&f, key);
        if (!v) {
            lort__msg_str(&m, "missing");
            return LORT_ERR_FORMAT;
        }
        if ((st = lort__desc_parse(v, e, &m))) return st;
        if ((st = lort_adapter_blocks(e, blocks, 2 * LORT_TT_MAX_CORES + 2, &nb)) ||
            (st = lort_adapter_sizes_query(e, 1, &sz))) {
            lort__msg_str(&m, "invalid desc: ");
            lort__msg_str(&m, lort_status_string(st));
            return st == LORT_ERR_UNSUPPORTED ? st : LORT_ERR_FORMAT;
        }
        if (sz.params > (ar.cap - ar.used) / 4 || sz.frozen_bytes > ar.cap - ar.used ||
            !(e->params = (float *)lort__arena_take(&ar, sz.params * 4 + 4)) ||
            (sz.frozen_bytes && !(e->frozen = lort__arena_take(&ar, sz.frozen_bytes + 4)))) {
            lort__msg_str(&m, "params larger than the file holds");
            return LORT_ERR_FORMAT;
        }

        for (b = 0; b < nb; ++b) {
            const lort_block *bl = &blocks[b];
            const lort_st_tensor *t = NULL;
            char tn[40];
            lort__out to;
            int d, ok;
            memset(&to, 0, sizeof to);
            to.p = (unsigned char *)tn;
            to.cap = sizeof tn - 1;
            lort__out_uint(&to, (uint64_t)i);
            lort__out_str(&to, ".");
            lort__out_str(&to, bl->name);
            tn[to.len] = '\0';
            if (cursor < f.n_tensors && strcmp(f.tensors[cursor].name, tn) == 0)
                t = &f.tensors[cursor++];
            else if (lort_st_find(&f, tn, &t) != LORT_OK) t = NULL;
            if (!t) {
                lort__msg_str(&m, "no tensor ");
                lort__msg_str(&m, tn);
                return LORT_ERR_FORMAT;
            }
            ok = t->dtype == (bl->bytes_only ? LORT_DTYPE_U8 : LORT_DTYPE_F32) && t->ndim == bl->ndim;
            for (d = 0; ok && d < bl->ndim; ++d) ok = t->shape[d] == bl->shape[d];
            if (!ok) {
                lort__msg_str(&m, "tensor ");
                lort__msg_str(&m, tn);
                lort__msg_str(&m, " has the wrong dtype or shape for its desc");
                return LORT_ERR_FORMAT;
            }
            if (bl->bytes_only)
                memcpy(e->frozen, t->data, t->nbytes);
            else
                (void)lort_st_get_f32(t, (bl->vector == LORT_BLOCK_FROZEN ? (float *)e->frozen : e->params) +
                                             bl->offset, bl->count);
            ++used;
        }
        lort__msg_init(&m, msg, msg_size);
    }
    if (used != f.n_tensors) {
        lort__msg_str(&m, "tensors that belong to no entry's block");
        return LORT_ERR_FORMAT;
    }
    p = sites_txt;
    for (i = 0; i < S; ++i) {
        lort_set_site *s = &sites[i];
        char *nl = p;
        const char *q = p;
        while (*nl != '\n') ++nl;
        *nl = '\0';
        if (lort__parse_int_word(&q, nl, &s->entry) || q >= nl || *q++ != ' ' ||
            lort__parse_int_word(&q, nl, &s->layer) || q >= nl || *q++ != ' ' ||
            lort__parse_int_word(&q, nl, &s->matrix) || (q < nl && *q != ' ')) {
            lort__msg_str(&m, "lortensor.sites line ");
            lort__msg_int(&m, i);
            lort__msg_str(&m, " is not \"entry layer matrix [name]\"");
            return LORT_ERR_FORMAT;
        }
        s->name = q < nl ? p + (q - p) + 1 : NULL;
        p = nl + 1;
    }
    if (*p) {
        lort__msg_str(&m, "lortensor.sites does not end with a newline");
        return LORT_ERR_FORMAT;
    }
    out.entries = entries;
    out.n_entries = E;
    out.sites = sites;
    out.n_sites = S;
    if ((st = lort_set_validate(&out, msg, msg_size))) return st == LORT_ERR_NULL ? st : LORT_ERR_FORMAT;
    *set = out;
    return LORT_OK;
}
/* ---- a small regex (PEFT's rank_pattern / alpha_pattern / target_modules) -------------------
   Python re subset compiled to a Pike VM (Thompson NFA simulation, linear in pattern x text, no
   backtracking): literals, ., [] classes with ranges and negation, \d \w \s \D \W \S and
   escaped punctuation, * + ? {m} {m,} {m,n} (a lazy ? after them is accepted: it cannot change
   whether a whole-string match exists), ( ) (?: ) groups, |, ^ and $. */
#define LORT__RE_MAX 384
#define LORT__RE_CLASSES 24
enum { LORT__RE_CHAR, LORT__RE_ANY, LORT__RE_CLASS, LORT__RE_SPLIT, LORT__RE_JMP,
       LORT__RE_MATCH, LORT__RE_BOL, LORT__RE_EOL };
typedef struct lort__re_inst {
    unsigned char op, c;
    short x, y;
} lort__re_inst;
typedef struct lort__re {
    lort__re_inst prog[LORT__RE_MAX];
    int n;
    unsigned char cls[LORT__RE_CLASSES][32];
    int ncls;
    const unsigned char *p, *end;
    lort_status err;
    int depth;
} lort__re;

LORT__PRIVATE int lort__re_emit(lort__re *re, int op, int c, int x, int y) {
    if (re->n >= LORT__RE_MAX) {
        if (!re->err) re->err = LORT_ERR_UNSUPPORTED;
        return re->n;
    }
    re->prog[re->n].op = (unsigned char)op;
    re->prog[re->n].c = (unsigned char)c;
    re->prog[re->n].x = (short)x;
    re->prog[re->n].y = (short)y;
    return re->n++;
}
/* Opens a slot at `at`: code at >= at moves up one; jumps inside the moved code that target
   >= at follow it; jumps before `at` (to the construct's start) keep their target. */
LORT__PRIVATE void lort__re_insert(lort__re *re, int at) {
    int i;
    if (re->n >= LORT__RE_MAX) {
        if (!re->err) re->err = LORT_ERR_UNSUPPORTED;
        return;
    }
    for (i = re->n; i > at; --i) re->prog[i] = re->prog[i - 1];
    ++re->n;
    for (i = at + 1; i < re->n; ++i)
        if (re->prog[i].op == LORT__RE_SPLIT || re->prog[i].op == LORT__RE_JMP) {
            if (re->prog[i].x >= at) ++re->prog[i].x;
            if (re->prog[i].op == LORT__RE_SPLIT && re->prog[i].y >= at) ++re->prog[i].y;
        }
}
LORT__PRIVATE void lort__re_class_set(unsigned char *c, int lo, int hi) {
    int i;
    for (i = lo; i <= hi; ++i) c[i >> 3] = (unsigned char)(c[i >> 3] | (1u << (i & 7)));
}
/* \d \w \s (and negations) into class c; 0 if e is not one of them. */
LORT__PRIVATE int lort__re_shorthand(unsigned char *c, int e) {
    unsigned char t[32];
    int i, neg = e == 'D' || e == 'W' || e == 'S';
    memset(t, 0, sizeof t);
    switch (e) {
    case 'd': case 'D': lort__re_class_set(t, '0', '9'); break;
    case 'w': case 'W':
        lort__re_class_set(t, '0', '9'); lort__re_class_set(t, 'a', 'z');
        lort__re_class_set(t, 'A', 'Z'); lort__re_class_set(t, '_', '_'); break;
    case 's': case 'S':
        lort__re_class_set(t, 9, 13); lort__re_class_set(t, ' ', ' '); break;
    default: return 0;
    }
    for (i = 0; i < 32; ++i) c[i] = (unsigned char)(c[i] | (neg ? (unsigned char)~t[i] : t[i]));
    return 1;
}
LORT__PRIVATE int lort__re_newclass(lort__re *re) {
    if (re->ncls >= LORT__RE_CLASSES) {
        if (!re->err) re->err = LORT_ERR_UNSUPPORTED;
        return 0;
    }
    memset(re->cls[re->ncls], 0, 32);
    return re->ncls++;
}
/* An escaped literal: punctuation, \n, \t; letters and digits other than shorthands are
   unsupported (\b, \A, backreferences ...). */
LORT__PRIVATE int lort__re_escape_literal(lort__re *re, int e) {
    if (e == 'n') return '\n';
    if (e == 't') return '\t';
    if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
        if (!re->err) re->err = LORT_ERR_UNSUPPORTED;
        return -1;
    }
    return e;
}
LORT__PRIVATE void lort__re_alt(lort__re *re);
LORT__PRIVATE void lort__re_atom(lort__re *re) {
    int c;
    if (re->p >= re->end) { re->err = LORT_ERR_FORMAT; return; }
    c = *re->p++;
    switch (c) {
    case '(':
        if (re->p < re->end && *re->p == '?') {
            if (re->end - re->p >= 2 && re->p[1] == ':') re->p += 2;
            else { if (!re->err) re->err = LORT_ERR_UNSUPPORTED; return; }
        }
        if (++re->depth > 32) { if (!re->err) re->err = LORT_ERR_UNSUPPORTED; return; }
        lort__re_alt(re);
        --re->depth;
        if (re->p >= re->end || *re->p != ')') { if (!re->err) re->err = LORT_ERR_FORMAT; return; }
        ++re->p;
        return;
    case '[': {
        int k = lort__re_newclass(re), neg = 0, first = 1, i;
        unsigned char *cl = re->cls[k];
        if (re->err) return;
        if (re->p < re->end && *re->p == '^') { neg = 1; ++re->p; }
        for (;;) {
            int lo, hi;
            if (re->p >= re->end) { re->err = LORT_ERR_FORMAT; return; }
            lo = *re->p++;
            if (lo == ']' && !first) break;
            first = 0;
            if (lo == '\\') {
                if (re->p >= re->end) { re->err = LORT_ERR_FORMAT; return; }
                lo = *re->p++;
                if (lort__re_shorthand(cl, lo)) continue;
                if ((lo = lort__re_escape_literal(re, lo)) < 0) return;
            }
            hi = lo;
            if (re->end - re->p >= 2 && re->p[0] == '-' && re->p[1] != ']') {
                hi = re->p[1];
                re->p += 2;
                if (hi == '\\') {
                    if (re->p >= re->end) { re->err = LORT_ERR_FORMAT; return; }
                    if ((hi = lort__re_escape_literal(re, *re->p++)) < 0) return;
                }
                if (hi < lo) { re->err = LORT_ERR_FORMAT; return; }
            }
            lort__re_class_set(cl, lo, hi);
        }
        if (neg)
            for (i = 0; i < 32; ++i) cl[i] = (unsigned char)~cl[i];
        lort__re_emit(re, LORT__RE_CLASS, k, 0, 0);
        return;
    }
    case '.': lort__re_emit(re, LORT__RE_ANY, 0, 0, 0); return;
    case '^': lort__re_emit(re, LORT__RE_BOL, 0, 0, 0); return;
    case '$': lort__re_emit(re, LORT__RE_EOL, 0, 0, 0); return;
    case '\\': {
        int e, k;
        if (re->p >= re->end) { re->err = LORT_ERR_FORMAT; return; }
        e = *re->p++;
        if (e == 'd' || e == 'D' || e == 'w' || e == 'W' || e == 's' || e == 'S') {
            k = lort__re_newclass(re);
            if (re->err) return;
            lort__re_shorthand(re->cls[k], e);
            lort__re_emit(re, LORT__RE_CLASS, k, 0, 0);
            return;
        }
        if ((e = lort__re_escape_literal(re, e)) < 0) return;
        lort__re_emit(re, LORT__RE_CHAR, e, 0, 0);
        return;
    }
    case '*': case '+': case '?': case '{': case ')': case '|':
        re->err = LORT_ERR_FORMAT; /* nothing to repeat / unbalanced */
        return;
    default: lort__re_emit(re, LORT__RE_CHAR, c, 0, 0); return;
    }
}
/* {m}, {m,}, {m,n}: m, n <= 64; returns 0 if the text at p is not a counted repeat. */
LORT__PRIVATE int lort__re_counts(lort__re *re, int *lo, int *hi) {
    const unsigned char *p = re->p + 1;
    int a = 0, b, digits = 0;
    while (p < re->end && *p >= '0' && *p <= '9' && digits < 3) { a = a * 10 + (*p++ - '0'); ++digits; }
    if (!digits) return 0;
    b = a;
    if (p < re->end && *p == ',') {
        ++p;
        digits = 0;
        b = 0;
        while (p < re->end && *p >= '0' && *p <= '9' && digits < 3) { b = b * 10 + (*p++ - '0'); ++digits; }
        if (!digits) b = -1;
    }
    if (p >= re->end || *p != '}') return 0;
    re->p = p + 1;
    *lo = a;
    *hi = b;
    return 1;
}
LORT__PRIVATE void lort__re_copy(lort__re *re, const lort__re_inst *code, int len, int from) {
    int i, base = re->n;
    for (i = 0; i < len; ++i) {
        lort__re_inst in = code[i];
        if (in.op == LORT__RE_SPLIT || in.op == LORT__RE_JMP) {
            in.x = (short)(in.x - from + base);
            if (in.op == LORT__RE_SPLIT) in.y = (short)(in.y - from + base);
        }
        if (re->n >= LORT__RE_MAX) { if (!re->err) re->err = LORT_ERR_UNSUPPORTED; return; }
        re->prog[re->n++] = in;
    }
}
LORT__PRIVATE void lort__re_repeat(lort__re *re) {
    int start = re->n;
    lort__re_atom(re);
    while (!re->err && re->p < re->end) {
        int c = *re->p, lo, hi;
        if (c == '*' || c == '?') {
            ++re->p;
            lort__re_insert(re, start);
            if (c == '*') lort__re_emit(re, LORT__RE_JMP, 0, start, 0);
            re->prog[start].op = LORT__RE_SPLIT;
            re->prog[start].x = (short)(start + 1);
            re->prog[start].y = (short)re->n;
        } else if (c == '+') {
            ++re->p;
            lort__re_emit(re, LORT__RE_SPLIT, 0, start, re->n + 1);
        } else if (c == '{' && lort__re_counts(re, &lo, &hi)) {
            lort__re_inst code[LORT__RE_MAX];
            int len = re->n - start, k;
            if (hi >= 0 && hi < lo) { re->err = LORT_ERR_FORMAT; return; }
            if (lo > 64 || hi > 64) { re->err = LORT_ERR_UNSUPPORTED; return; }
            memcpy(code, re->prog + start, (size_t)len * sizeof code[0]);
            re->n = start;
            for (k = 0; k < lo; ++k) lort__re_copy(re, code, len, start);
            if (hi < 0) { /* {m,}: a star of one more copy */
                int s = lort__re_emit(re, LORT__RE_SPLIT, 0, 0, 0);
                lort__re_copy(re, code, len, start);
                lort__re_emit(re, LORT__RE_JMP, 0, s, 0);
                re->prog[s].x = (short)(s + 1);
                re->prog[s].y = (short)re->n;
            } else {
                for (k = lo; k < hi && !re->err; ++k) {
                    int s = lort__re_emit(re, LORT__RE_SPLIT, 0, 0, 0);
                    lort__re_copy(re, code, len, start);
                    re->prog[s].x = (short)(s + 1);
                    re->prog[s].y = (short)re->n;
                }
            }
        } else {
            break;
        }
        if (re->p < re->end && *re->p == '?') ++re->p; /* lazy: same language */
        if (re->p < re->end && (*re->p == '*' || *re->p == '+')) { re->err = LORT_ERR_FORMAT; return; }
    }
}
LORT__PRIVATE void lort__re_alt(lort__re *re) {
    int start = re->n, jmp;
    while (!re->err && re->p < re->end && *re->p != '|' && *re->p != ')') lort__re_repeat(re);
    if (re->err || re->p >= re->end || *re->p != '|') return;
    ++re->p;
    lort__re_insert(re, start);
    jmp = lort__re_emit(re, LORT__RE_JMP, 0, 0, 0);
    re->prog[start].op = LORT__RE_SPLIT;
    re->prog[start].x = (short)(start + 1);
    re->prog[start].y = (short)re->n;
    lort__re_alt(re);
    if (!re->err) re->prog[jmp].x = (short)re->n;
}
/* Compiles pattern (len bytes); status LORT_ERR_FORMAT (not a valid regex) or UNSUPPORTED. */
LORT__PRIVATE lort_status lort__re_compile(lort__re *re, const char *pat, size_t len) {
    re->n = 0;
    re->ncls = 0;
    re->err = LORT_OK;
    re->depth = 0;
    re->p = (const unsigned char *)pat;
    re->end = re->p + len;
    lort__re_alt(re);
    if (!re->err && re->p != re->end) re->err = LORT_ERR_FORMAT; /* a stray ')' */
    lort__re_emit(re, LORT__RE_MATCH, 0, 0, 0);
    return re->err;
}
/* Python re.match semantics: anchored at 0, MATCH anywhere. */
LORT__PRIVATE int lort__re_match(const lort__re *re, const char *s, size_t len) {
    short clist[LORT__RE_MAX], nlist[LORT__RE_MAX], stack[2 * LORT__RE_MAX];
    unsigned mark[LORT__RE_MAX];
    int nc = 0, nn, i, sp;
    size_t pos;
    unsigned gen = 1;
    memset(mark, 0, sizeof mark);
    /* add pc with its epsilon closure at position pos into list */
#define LORT__RE_ADD(list, cnt, pc0)                                                          \
    do {                                                                                      \
        sp = 0;                                                                               \
        stack[sp++] = (short)(pc0);                                                           \
        while (sp > 0) {                                                                      \
            int pc = stack[--sp];                                                             \
            const lort__re_inst *ii = &re->prog[pc];                                          \
            if (mark[pc] == gen) continue;                                                    \
            mark[pc] = gen;                                                                   \
            if (ii->op == LORT__RE_JMP) stack[sp++] = ii->x;                                  \
            else if (ii->op == LORT__RE_SPLIT) { stack[sp++] = ii->y; stack[sp++] = ii->x; }  \
            else if (ii->op == LORT__RE_BOL) { if (pos == 0) stack[sp++] = (short)(pc + 1); } \
            else if (ii->op == LORT__RE_EOL) { if (pos == len) stack[sp++] = (short)(pc + 1); } \
            else list[cnt++] = (short)pc;                                                     \
        }                                                                                     \
    } while (0)
    pos = 0;
    LORT__RE_ADD(clist, nc, 0);
    for (;; ++pos) {
        int c;
        for (i = 0; i < nc; ++i)
            if (re->prog[clist[i]].op == LORT__RE_MATCH) return 1;
        if (pos >= len || nc == 0) return 0;
        c = (unsigned char)s[pos];
        ++gen;
        nn = 0;
        {
            size_t save = pos;
            pos = save + 1;
            for (i = 0; i < nc; ++i) {
                const lort__re_inst *in = &re->prog[clist[i]];
                int ok = (in->op == LORT__RE_CHAR && in->c == c) ||
                         (in->op == LORT__RE_ANY && c != '\n') ||
                         (in->op == LORT__RE_CLASS && (re->cls[in->c][c >> 3] >> (c & 7)) & 1);
                if (ok) LORT__RE_ADD(nlist, nn, clist[i] + 1);
            }
            pos = save;
        }
        memcpy(clist, nlist, (size_t)nn * sizeof clist[0]);
        nc = nn;
    }
#undef LORT__RE_ADD
}
/* name matches key as PEFT's get_pattern_key does: re.match(r"(.*\.)?(key)$", name); or, with
   whole != 0, re.fullmatch(key, name) (target_modules as a string). key is a JSON span. */
LORT__PRIVATE lort_status lort__re_peft(const lort__span *key, const char *name, int whole,
                                        int *match) {
    char pat[300];
    lort__re re;
    size_t n = 0;
    lort_status st;
    if (key->len > 256) return LORT_ERR_UNSUPPORTED;
    memcpy(pat, whole ? "(" : "(.*\\.)?(", whole ? 1 : 8);
    n = whole ? 1 : 8;
    lort__js_decode(key, pat + n);
    n += key->len;
    memcpy(pat + n, ")$", 2);
    n += 2;
    if ((st = lort__re_compile(&re, pat, n))) return st;
    *match = lort__re_match(&re, name, strlen(name));
    return LORT_OK;
}

/* ---- PEFT --------------------------------------------------------------------------------- */
typedef struct lort__peft_cfg {
    int r, use_rslora, use_dora, lora_bias, fan_in_fan_out, has_r, has_alpha;
    float alpha, dropout;
    const unsigned char *rank_pattern, *alpha_pattern, *targets; /* value starts, or NULL */
    int targets_kind;   /* 0 none/null, 1 string, 2 list, 3 "all-linear" */
    const unsigned char *end;
} lort__peft_cfg;

LORT__PRIVATE lort_status lort__peft_config(const char *text, size_t len, lort__peft_cfg *c,
                                            lort__msg *m) {
    lort__json j;
    lort__span k, s;
    int r;
    lort_status st;
    memset(c, 0, sizeof *c);
    c->r = 8; /* PEFT's defaults */
    c->alpha = 8.0f;
    j.p = (const unsigned char *)text;
    j.end = j.p + len;
    j.m = m;
    j.depth = 0;
    c->end = j.end;
    if (!text) return LORT_ERR_NULL;
    lort__msg_str(m, "adapter_config.json: ");
    if ((st = lort__js_obj_begin(&j))) return st;
    for (r = lort__js_obj_next(&j, 1, &k); r == 1; r = lort__js_obj_next(&j, 0, &k)) {
        double v;
        int iu, lit;
        uint64_t u;
        if (lort__js_is(&k, "r") || lort__js_is(&k, "lora_alpha") ||
            lort__js_is(&k, "lora_dropout")) {
            if ((st = lort__js_number(&j, &v, &iu, &u))) return st;
            if (lort__js_is(&k, "r")) {
                if (!iu || u < 1 || u > (uint64_t)INT_MAX) return lort__js_fail(&j, "r is not a positive integer");
                c->r = (int)u;
            } else if (lort__js_is(&k, "lora_alpha")) {
                if (!(v > -1e30 && v < 1e30)) return lort__js_fail(&j, "lora_alpha out of range");
                c->alpha = (float)v;
            } else {
                if (!(v >= 0.0 && v < 1.0)) return lort__js_fail(&j, "lora_dropout not in [0, 1)");
                c->dropout = (float)v;
            }
        } else if (lort__js_is(&k, "use_rslora") || lort__js_is(&k, "use_dora") ||
                   lort__js_is(&k, "lora_bias") || lort__js_is(&k, "fan_in_fan_out")) {
            lit = lort__js_literal(&j);
            if (lit < 0 || lit == 2) return lort__js_fail(&j, "expected true or false");
            if (lort__js_is(&k, "use_rslora")) c->use_rslora = lit;
            else if (lort__js_is(&k, "use_dora")) c->use_dora = lit;
            else if (lort__js_is(&k, "lora_bias")) c->lora_bias = lit;
            else c->fan_in_fan_out = lit;
        } else if (lort__js_is(&k, "bias") || lort__js_is(&k, "peft_type")) {
            int bias = lort__js_is(&k, "bias");
            if ((st = lort__js_string(&j, &s))) return st;
            if (bias && !lort__js_is(&s, "none")) {
                lort__msg_str(m, "bias is not \"none\": bias vectors are not supported");
                return LORT_ERR_UNSUPPORTED;
            }
            if (!bias && !lort__js_is(&s, "LORA")) {
                lort__msg_str(m, "peft_type is not \"LORA\"");
                return LORT_ERR_UNSUPPORTED;
            }
        } else if (lort__js_is(&k, "rank_pattern") || lort__js_is(&k, "alpha_pattern")) {
            const unsigned char *at;
            int rank = lort__js_is(&k, "rank_pattern");
            lort__span pk;
            int rr;
            lort__js_ws(&j);
            at = j.p;
            if (lort__js_literal(&j) == 2) continue;
            if ((st = lort__js_obj_begin(&j))) return st;
            for (rr = lort__js_obj_next(&j, 1, &pk); rr == 1; rr = lort__js_obj_next(&j, 0, &pk)) {
                if ((st = lort__js_number(&j, &v, &iu, &u))) return st;
                if (rank && (!iu || u < 1 || u > (uint64_t)INT_MAX))
                    return lort__js_fail(&j, "a rank_pattern value is not a positive integer");
                if (!rank && !(v > -1e30 && v < 1e30))
                    return lort__js_fail(&j, "an alpha_pattern value out of range");
            }
            if (rr < 0) return (lort_status)rr;
            if (rank) c->rank_pattern = at;
            else c->alpha_pattern = at;
        } else if (lort__js_is(&k, "target_modules")) {
            lort__js_ws(&j);
            c->targets = j.p;
            if (lort__js_literal(&j) == 2) {
                c->targets_kind = 0;
            } else if (j.p < j.end && *j.p == '"') {
                if ((st = lort__js_string(&j, &s))) return st;
                c->targets_kind = lort__js_is(&s, "all-linear") ? 3 : 1;
            } else {
                if (!lort__js_eat(&j, '[')) return lort__js_fail(&j, "target_modules is not a list or a string");
                if (!lort__js_eat(&j, ']')) {
                    do {
                        if ((st = lort__js_string(&j, &s))) return st;
                    } while (lort__js_eat(&j, ','));
                    if (!lort__js_eat(&j, ']')) return lort__js_fail(&j, "bad target_modules list");
                }
                c->targets_kind = 2;
            }
        } else if (lort__js_is(&k, "modules_to_save")) {
            lort__js_ws(&j);
            if (lort__js_literal(&j) != 2) {
                if (!lort__js_eat(&j, '[') || !lort__js_eat(&j, ']')) {
                    lort__msg_str(m, "modules_to_save (full module weights) is not supported");
                    return LORT_ERR_UNSUPPORTED;
                }
            }
        } else if ((st = lort__js_skip(&j))) {
            return st;
        }
    }
    if (r < 0) return (lort_status)r;
    lort__js_ws(&j);
    if (j.p != j.end) return lort__js_fail(&j, "trailing characters after the JSON object");
    if (c->use_dora) {
        lort__msg_str(m, "use_dora: DoRA magnitude vectors are not supported");
        return LORT_ERR_UNSUPPORTED;
    }
    if (c->lora_bias) {
        lort__msg_str(m, "lora_bias: a bias on lora_B is not supported");
        return LORT_ERR_UNSUPPORTED;
    }
    lort__msg_init(m, m->buf, m->cap);
    return LORT_OK;
}
/* The first key of the pattern object at `at` matching name (PEFT order): *found, and its
   value. */
LORT__PRIVATE lort_status lort__peft_pattern(const lort__peft_cfg *c, const unsigned char *at,
                                             const char *name, int *found, double *value,
                                             lort__msg *m) {
    lort__json j;
    lort__span k;
    int r, match;
    lort__msg none;
    lort_status st;
    *found = 0;
    if (!at) return LORT_OK;
    lort__msg_init(&none, NULL, 0);
    j.p = at;
    j.end = c->end;
    j.m = &none;
    j.depth = 0;
    if (lort__js_obj_begin(&j)) return LORT_OK; /* null */
    for (r = lort__js_obj_next(&j, 1, &k); r == 1; r = lort__js_obj_next(&j, 0, &k)) {
        double v;
        int iu;
        uint64_t u;
        (void)lort__js_number(&j, &v, &iu, &u);
        if ((st = lort__re_peft(&k, name, 0, &match))) {
            char kb[64];
            lort__msg_str(m, "adapter_config.json: pattern key ");
            if (k.len < sizeof kb) {
                lort__js_decode(&k, kb);
                lort__msg_str(m, kb);
            }
            lort__msg_str(m, st == LORT_ERR_FORMAT ? ": not a valid regex" : ": regex feature not supported");
            return st;
        }
        if (match) {
            *found = 1;
            *value = v;
            return LORT_OK;
        }
    }
    return LORT_OK;
}
/* PEFT's check_target_module_exists for a list or a string of target_modules. */
LORT__PRIVATE lort_status lort__peft_targeted(const lort__peft_cfg *c, const char *name,
                                              int *ok) {
    lort__json j;
    lort__span s;
    lort__msg none;
    size_t nl = strlen(name);
    *ok = 1;
    if (c->targets_kind == 0 || c->targets_kind == 3) return LORT_OK;
    lort__msg_init(&none, NULL, 0);
    j.p = c->targets;
    j.end = c->end;
    j.m = &none;
    j.depth = 0;
    if (c->targets_kind == 1) {
        (void)lort__js_string(&j, &s);
        return lort__re_peft(&s, name, 1, ok);
    }
    *ok = 0;
    (void)lort__js_eat(&j, '[');
    if (lort__js_eat(&j, ']')) return LORT_OK;
    do {
        char t[256];
        (void)lort__js_string(&j, &s);
        if (s.len >= sizeof t) continue;
        lort__js_decode(&s, t);
        if (strcmp(t, name) == 0 ||
            (nl > s.len && name[nl - s.len - 1] == '.' && strcmp(name + nl - s.len, t) == 0)) {
            *ok = 1;
            return LORT_OK;
        }
    } while (lort__js_eat(&j, ','));
    return LORT_OK;
}

#define LORT__PEFT_PREFIX "base_model.model."
/* Splits a key: *mlen = length of the module path (prefix removed from *mod), *which = 0 for
   lora_A.weight, 1 for lora_B.weight; else an error message names the key. */
LORT__PRIVATE lort_status lort__peft_key(const char *key, const char **mod, size_t *mlen,
                                         int *which, lort__msg *m) {
    static const char *const refused[][2] = {
        {".lora_magnitude_vector", "a DoRA magnitude vector (use_dora) is not supported"},
        {".lora_B.bias", "a bias on lora_B (lora_bias) is not supported"},
        {".lora_embedding_A", "embedding LoRA is not supported"},
        {".lora_embedding_B", "embedding LoRA is not supported"}};
    size_t n = strlen(key), pl = strlen(LORT__PEFT_PREFIX), i;
    const char *k = key;
    if (n > pl && strncmp(key, LORT__PEFT_PREFIX, pl) == 0) {
        k += pl;
        n -= pl;
    }
    *mod = k;
    if (n > 14 && strcmp(k + n - 14, ".lora_A.weight") == 0) { *which = 0; *mlen = n - 14; return LORT_OK; }
    if (n > 14 && strcmp(k + n - 14, ".lora_B.weight") == 0) { *which = 1; *mlen = n - 14; return LORT_OK; }
    lort__msg_str(m, key);
    lort__msg_str(m, ": ");
    for (i = 0; i < sizeof refused / sizeof refused[0]; ++i) {
        size_t rl = strlen(refused[i][0]);
        if (n >= rl && strncmp(k + n - rl, refused[i][0], rl) == 0) {
            lort__msg_str(m, refused[i][1]);
            return LORT_ERR_UNSUPPORTED;
        }
    }
    lort__msg_str(m, "not a LoRA tensor (a bias or a modules_to_save weight?): not supported");
    return LORT_ERR_UNSUPPORTED;
}

LORT_DEF lort_status lort_peft_load_size(const void *st, size_t st_size, const char *config,
                                         size_t config_size, size_t *arena_bytes, char *msg,
                                         size_t msg_size) {
    lort__st_parse ps;
    lort__peft_cfg cfg;
    lort__msg m;
    lort_status s;
    size_t nt;
    lort__msg_init(&m, msg, msg_size);
    if (!arena_bytes) return LORT_ERR_NULL;
    if ((s = lort__peft_config(config, config_size, &cfg, &m))) return s;
    if ((s = lort__st_counts(st, st_size, &ps, &m))) return s;
    nt = ps.n_tensors;
    if (nt > LORT__SIZE_LIMIT / 1024 || ps.data_size > LORT__SIZE_LIMIT / 4) return LORT_ERR_OVERFLOW;
    *arena_bytes = lort__st_arena(nt, ps.n_meta, ps.str_bytes) +
                   nt * (sizeof(lort_adapter) + sizeof(lort_set_site) + 2 * LORT__ALIGN) +
                   ps.str_bytes + 2 * ps.data_size + 4 * LORT__ALIGN;
    return LORT_OK;
}

LORT_DEF lort_status lort_peft_load(const void *st, size_t st_size, const char *config,
                                    size_t config_size, void *arena, size_t arena_size,
                                    lort_adapter_set *set, lort_peft_info *info, char *msg,
                                    size_t msg_size) {
    lort__peft_cfg cfg;
    lort__msg m;
    lort_status s;
    size_t need, stbytes;
    lort__arena ar;
    lort_st_file f;
    lort_adapter *entries;
    lort_set_site *sites;
    int i, q, S = 0, nB = 0;
    if ((s = lort_peft_load_size(st, st_size, config, config_size, &need, msg, msg_size))) return s;
    lort__msg_init(&m, msg, msg_size);
    if (!arena || !set) return LORT_ERR_NULL;
    if (arena_size < need) {
        lort__msg_str(&m, "arena smaller than lort_peft_load_size");
        return LORT_ERR_WORKSPACE;
    }
    (void)lort__peft_config(config, config_size, &cfg, &m);
    lort__arena_init(&ar, arena, arena_size);
    if ((s = lort_st_read_size(st, st_size, &stbytes, msg, msg_size)) ||
        (s = lort_st_read(st, st_size, lort__arena_take(&ar, stbytes), stbytes, &f, msg, msg_size)))
        return s;
    for (i = 0; i < f.n_tensors; ++i) { /* every key is a lora_A or lora_B weight */
        const char *mod;
        size_t ml;
        int which;
        if ((s = lort__peft_key(f.tensors[i].name, &mod, &ml, &which, &m))) return s;
        S += which == 0;
        nB += which == 1;
    }
    entries = (lort_adapter *)lort__arena_take(&ar, (size_t)S * sizeof(lort_adapter) + 1);
    sites = (lort_set_site *)lort__arena_take(&ar, (size_t)S * sizeof(lort_set_site) + 1);
    if (!entries || !sites) return LORT_ERR_WORKSPACE;
    for (i = 0, q = 0; i < f.n_tensors; ++i) {
        const lort_st_tensor *A = &f.tensors[i], *B = NULL;
        const char *mod, *mb;
        size_t ml, mbl;
        int which, found, r, j, tok;
        double pv;
        char *name;
        lort_adapter *e;
        float *params;
        (void)lort__peft_key(A->name, &mod, &ml, &which, &m);
        if (which != 0) continue;
        for (j = 0; j < f.n_tensors && !B; ++j) { /* the B next to it first (sorted files) */
            int t = (i + 1 + j) % f.n_tensors;
            (void)lort__peft_key(f.tensors[t].name, &mb, &mbl, &which, &m);
            if (which == 1 && mbl == ml && memcmp(mb, mod, ml) == 0) B = &f.tensors[t];
        }
        if (!B) {
            lort__msg_str(&m, A->name);
            lort__msg_str(&m, ": no matching lora_B.weight");
            return LORT_ERR_FORMAT;
        }
        if (!(name = (char *)lort__arena_take(&ar, ml + 1))) return LORT_ERR_WORKSPACE;
        memcpy(name, mod, ml);
        name[ml] = '\0';
        if (A->ndim != 2 || B->ndim != 2 || A->shape[0] != B->shape[1] || A->shape[0] < 1 ||
            A->shape[1] < 1 || B->shape[0] < 1 || A->shape[0] > INT_MAX || A->shape[1] > INT_MAX ||
            B->shape[0] > INT_MAX || A->dtype > LORT_DTYPE_BF16 || B->dtype > LORT_DTYPE_BF16) {
            lort__msg_str(&m, name);
            lort__msg_str(&m, ": lora_A must be [r, in] and lora_B [out, r] in F32, F16 or BF16; got [");
            for (j = 0; j < A->ndim; ++j) { if (j) lort__msg_str(&m, ", "); lort__msg_int(&m, A->shape[j]); }
            lort__msg_str(&m, "] and [");
            for (j = 0; j < B->ndim; ++j) { if (j) lort__msg_str(&m, ", "); lort__msg_int(&m, B->shape[j]); }
            lort__msg_str(&m, "]");
            return LORT_ERR_SHAPE;
        }
        r = cfg.r;
        if ((s = lort__peft_pattern(&cfg, cfg.rank_pattern, name, &found, &pv, &m))) return s;
        if (found) r = (int)pv;
        if (A->shape[0] != r) {
            lort__msg_str(&m, name);
            lort__msg_str(&m, ".lora_A.weight: shape [");
            lort__msg_int(&m, A->shape[0]);
            lort__msg_str(&m, ", ");
            lort__msg_int(&m, A->shape[1]);
            lort__msg_str(&m, "] but r = ");
            lort__msg_int(&m, r);
            lort__msg_str(&m, found ? " (rank_pattern)" : " (config r)");
            return LORT_ERR_SHAPE;
        }
        if ((s = lort__peft_targeted(&cfg, name, &tok))) return s;
        if (!tok) {
            lort__msg_str(&m, name);
            lort__msg_str(&m, ": not in target_modules");
            return LORT_ERR_FORMAT;
        }
        e = &entries[q];
        memset(e, 0, sizeof *e);
        e->kind = LORT_KIND_LORA;
        e->desc.lora.r = r;
        e->desc.lora.d_in = (int)A->shape[1];
        e->desc.lora.d_out = (int)B->shape[0];
        e->desc.lora.alpha = cfg.alpha;
        if ((s = lort__peft_pattern(&cfg, cfg.alpha_pattern, name, &found, &pv, &m))) return s;
        if (found) e->desc.lora.alpha = (float)pv;
        e->desc.lora.rslora = cfg.use_rslora;
        if ((lort__f32_bits(e->desc.lora.alpha) & 0x7FFFFFFFu) == 0) { /* PEFT: scale 0; lortensor: alpha 0 means r */
            lort__msg_str(&m, name);
            lort__msg_str(&m, ": lora_alpha = 0 (a zero scale) is not supported");
            return LORT_ERR_UNSUPPORTED;
        }
        params = (float *)lort__arena_take(&ar, (A->count + B->count) * sizeof(float));
        if (!params) return LORT_ERR_WORKSPACE;
        (void)lort_st_get_f32(A, params, A->count);
        (void)lort_st_get_f32(B, params + A->count, B->count);
        e->params = params;
        sites[q].name = name;
        sites[q].entry = q;
        sites[q].layer = sites[q].matrix = 0;
        ++q;
    }
    if (nB != S) {
        lort__msg_str(&m, "a lora_B.weight without its lora_A.weight");
        return LORT_ERR_FORMAT;
    }
    {
        lort_adapter_set out;
        out.entries = entries;
        out.n_entries = S;
        out.sites = sites;
        out.n_sites = S;
        if ((s = lort_set_validate(&out, msg, msg_size))) return LORT_ERR_FORMAT;
        *set = out;
    }
    if (info) {
        info->r = cfg.r;
        info->lora_alpha = cfg.alpha;
        info->use_rslora = cfg.use_rslora;
        info->fan_in_fan_out = cfg.fan_in_fan_out;
        info->lora_dropout = cfg.dropout;
        info->dtype = f.n_tensors ? f.tensors[0].dtype : LORT_DTYPE_F32;
    }
    return LORT_OK;
}
/* A float as JSON text with 9 significant digits (enough to read back the same float). */
LORT__PRIVATE void lort__out_float(lort__out *o, float f) {
    double x = (double)f, p10 = 1.0;
    uint64_t dg;
    int e = 0, i;
    char t[12];
    if ((lort__f32_bits(f) & 0x7FFFFFFFu) == 0 || (lort__f32_bits(f) & 0x7F800000u) == 0x7F800000u) {
        lort__out_str(o, "0.0"); /* zero, or NaN / Inf (not JSON) */
        return;
    }
    if (x < 0) {
        lort__out_str(o, "-");
        x = -x;
    }
    if (x < 1e15 && !(x > (double)(int64_t)x)) { /* integers as "16.0" */
        lort__out_uint(o, (uint64_t)x);
        lort__out_str(o, ".0");
        return;
    }
    while (x >= 1e9) { x /= 10.0; ++e; }
    while (x < 1e8) { x *= 10.0; --e; }
    (void)p10;
    dg = (uint64_t)(x + 0.5);
    if (dg >= 1000000000u) { dg /= 10u; ++e; }
    for (i = 8; i >= 0; --i) { t[i] = (char)('0' + (int)(dg % 10u)); dg /= 10u; }
    /* d.dddddddd e(E+8) */
    lort__out_bytes(o, t, 1);
    lort__out_str(o, ".");
    lort__out_bytes(o, t + 1, 8);
    lort__out_str(o, "e");
    lort__out_int(o, e + 8);
}

/* ---- lort_peft_save ------------------------------------------------------------------------ */
typedef struct lort__peft_ctx {
    const lort_adapter_set *set;
    int dtype;
} lort__peft_ctx;
LORT__PRIVATE void lort__peft_tensor(void *ctx, int i, lort__out *name, lort_st_write_tensor *t) {
    const lort__peft_ctx *c = (const lort__peft_ctx *)ctx;
    const lort_set_site *s = &c->set->sites[i / 2];
    const lort_adapter *e = &c->set->entries[s->entry];
    const lort_lora_desc *d = &e->desc.lora;
    lort__out_str(name, LORT__PEFT_PREFIX);
    lort__out_str(name, s->name);
    lort__out_str(name, i % 2 ? ".lora_B.weight" : ".lora_A.weight");
    t->dtype = c->dtype;
    t->ndim = 2;
    t->shape[0] = i % 2 ? d->d_out : d->r;
    t->shape[1] = i % 2 ? d->r : d->d_in;
    t->data = e->params + (i % 2 ? (size_t)d->r * (size_t)d->d_in : 0);
}
LORT__PRIVATE void lort__peft_no_meta(void *ctx, int i, lort__out *key, lort__out *value) {
    (void)ctx;
    (void)i;
    if (key) lort__out_str(key, "format");
    if (value) lort__out_str(value, "pt");
}
/* The site's last name component: [*b, *e). */
LORT__PRIVATE void lort__last_component(const char *name, const char **b) {
    const char *p = name;
    *b = name;
    for (; *p; ++p)
        if (*p == '.') *b = p + 1;
}
LORT__PRIVATE void lort__out_regex_escaped(lort__out *o, const char *s) {
    for (; *s; ++s) {
        char c[2];
        c[0] = *s;
        c[1] = '\0';
        if (strchr(".^$*+?{}[]\\|()", *s)) lort__out_str(o, "\\");
        lort__out_str(o, c);
    }
}
LORT__PRIVATE void lort__peft_config_text(const lort_adapter_set *set, int fan_in_fan_out,
                                          lort__out *o) {
    const lort_lora_desc *d0 = &set->entries[set->sites[0].entry].desc.lora;
    float a0 = (lort__f32_bits(d0->alpha) & 0x7FFFFFFFu) ? d0->alpha : (float)d0->r;
    int i, q, first;
    lort__out_str(o, "{\n  \"peft_type\": \"LORA\",\n  \"task_type\": null,\n"
                     "  \"base_model_name_or_path\": null,\n  \"r\": ");
    lort__out_int(o, d0->r);
    lort__out_str(o, ",\n  \"lora_alpha\": ");
    lort__out_float(o, a0);
    lort__out_str(o, ",\n  \"use_rslora\": ");
    lort__out_str(o, d0->rslora ? "true" : "false");
    lort__out_str(o, ",\n  \"lora_dropout\": 0.0,\n  \"fan_in_fan_out\": ");
    lort__out_str(o, fan_in_fan_out ? "true" : "false");
    lort__out_str(o, ",\n  \"bias\": \"none\",\n  \"use_dora\": false,\n  \"lora_bias\": false,\n"
                     "  \"modules_to_save\": null,\n  \"init_lora_weights\": true,\n"
                     "  \"inference_mode\": true,\n  \"target_modules\": [");
    for (i = 0, first = 1; i < set->n_sites; ++i) {
        const char *b, *bq;
        int dup = 0;
        lort__last_component(set->sites[i].name, &b);
        for (q = 0; q < i && !dup; ++q) {
            lort__last_component(set->sites[q].name, &bq);
            dup = strcmp(b, bq) == 0;
        }
        if (dup) continue;
        lort__out_str(o, first ? "\"" : ", \"");
        o->esc = 1;
        lort__out_str(o, b);
        o->esc = 0;
        lort__out_str(o, "\"");
        first = 0;
    }
    lort__out_str(o, "]");
    for (q = 0; q < 2; ++q) {
        lort__out_str(o, q ? ",\n  \"alpha_pattern\": {" : ",\n  \"rank_pattern\": {");
        for (i = 0, first = 1; i < set->n_sites; ++i) {
            const lort_lora_desc *d = &set->entries[set->sites[i].entry].desc.lora;
            float a = (lort__f32_bits(d->alpha) & 0x7FFFFFFFu) ? d->alpha : (float)d->r;
            if (q == 0 ? d->r == d0->r : lort__f32_bits(a) == lort__f32_bits(a0)) continue;
            lort__out_str(o, first ? "\n    \"" : ",\n    \"");
            o->esc = 1;
            lort__out_regex_escaped(o, set->sites[i].name);
            o->esc = 0;
            lort__out_str(o, "\": ");
            if (q == 0) lort__out_int(o, d->r);
            else lort__out_float(o, a);
            first = 0;
        }
        lort__out_str(o, first ? "}" : "\n  }");
    }
    lort__out_str(o, "\n}\n");
}
LORT__PRIVATE lort_status lort__peft_save_check(const lort_adapter_set *set, int dtype,
                                                lort__msg *m, char *msg, size_t msg_size) {
    int i;
    lort_status st;
    if ((st = lort_set_validate(set, msg, msg_size))) return st;
    if (dtype < LORT_DTYPE_F32 || dtype > LORT_DTYPE_BF16) return LORT_ERR_INVALID_ARG;
    if (set->n_sites < 1) {
        lort__msg_str(m, "PEFT files need at least one site");
        return LORT_ERR_INVALID_ARG;
    }
    for (i = 0; i < set->n_sites; ++i) {
        const lort_set_site *s = &set->sites[i];
        const lort_adapter *e = &set->entries[s->entry];
        lort__msg_str(m, "site ");
        lort__msg_int(m, i);
        lort__msg_str(m, ": ");
        if (!s->name || !s->name[0]) {
            lort__msg_str(m, "PEFT needs a module name");
            return LORT_ERR_INVALID_ARG;
        }
        if (e->kind != LORT_KIND_LORA) {
            lort__msg_str(m, "not a lora entry (export it to LoRA first)");
            return LORT_ERR_UNSUPPORTED;
        }
        if (!e->params) return LORT_ERR_NULL;
        if (!e->desc.lora.rslora != !set->entries[set->sites[0].entry].desc.lora.rslora) {
            lort__msg_str(m, "rslora differs from site 0 (PEFT has one use_rslora)");
            return LORT_ERR_INVALID_ARG;
        }
        lort__msg_init(m, msg, msg_size);
    }
    return LORT_OK;
}

LORT_DEF lort_status lort_peft_save_size(const lort_adapter_set *set, int dtype,
                                         int fan_in_fan_out, size_t *st_bytes,
                                         size_t *config_bytes, char *msg, size_t msg_size) {
    lort__msg m;
    lort__peft_ctx c;
    lort__st_src src;
    lort__out o;
    lort_status st;
    lort__msg_init(&m, msg, msg_size);
    if (!st_bytes || !config_bytes) return LORT_ERR_NULL;
    if ((st = lort__peft_save_check(set, dtype, &m, msg, msg_size))) return st;
    if (set->n_sites > INT_MAX / 2) return LORT_ERR_OVERFLOW;
    c.set = set;
    c.dtype = dtype;
    src.ctx = &c;
    src.n_tensors = 2 * set->n_sites;
    src.n_meta = 1;
    src.tensor = lort__peft_tensor;
    src.meta = lort__peft_no_meta;
    memset(&o, 0, sizeof o);
    if ((st = lort__st_emit(&src, &o))) return st;
    *st_bytes = o.len;
    memset(&o, 0, sizeof o);
    lort__peft_config_text(set, fan_in_fan_out, &o);
    *config_bytes = o.len;
    return LORT_OK;
}

LORT_DEF lort_status lort_peft_save(const lort_adapter_set *set, int dtype, int fan_in_fan_out,
                                    void *st, size_t st_size, char *config, size_t config_size,
                                    char *msg, size_t msg_size) {
    size_t sb, cb;
    lort__peft_ctx c;
    lort__st_src src;
    lort__out o;
    lort_status s;
    if ((s = lort_peft_save_size(set, dtype, fan_in_fan_out, &sb, &cb, msg, msg_size))) return s;
    if (!st || !config) return LORT_ERR_NULL;
    if (st_size < sb || config_size < cb) return LORT_ERR_WORKSPACE;
    c.set = set;
    c.dtype = dtype;
    src.ctx = &c;
    src.n_tensors = 2 * set->n_sites;
    src.n_meta = 1;
    src.tensor = lort__peft_tensor;
    src.meta = lort__peft_no_meta;
    memset(&o, 0, sizeof o);
    o.p = (unsigned char *)st;
    o.cap = st_size;
    if ((s = lort__st_emit(&src, &o))) return s;
    memset(&o, 0, sizeof o);
    o.p = (unsigned char *)config;
    o.cap = config_size;
    lort__peft_config_text(set, fan_in_fan_out, &o);
    return LORT_OK;
}

LORT_DEF lort_status lort_rope_permute_rows(float *B, int heads, int head_dim, int cols,
                                            int inverse, float *work, size_t work_count) {
    size_t hs, half, i, s, h;
    if (!B || !work) return LORT_ERR_NULL;
    if (heads <= 0 || head_dim <= 0 || cols <= 0) return LORT_ERR_INVALID_ARG;
    if (head_dim % 2) return LORT_ERR_SHAPE;
    if ((size_t)head_dim > LORT__SIZE_LIMIT / 4 / (size_t)cols ||
        (size_t)heads > LORT__SIZE_LIMIT / 4 / ((size_t)head_dim * (size_t)cols))
        return LORT_ERR_OVERFLOW;
    hs = (size_t)head_dim * (size_t)cols;
    if (work_count < hs) return LORT_ERR_WORKSPACE;
    half = (size_t)head_dim / 2;
    for (h = 0; h < (size_t)heads; ++h) {
        float *blk = B + h * hs;
        memcpy(work, blk, hs * sizeof(float));
        for (s = 0; s < 2; ++s)
            for (i = 0; i < half; ++i) {
                size_t hf = s * half + i, gg = 2 * i + s; /* HF row hf <-> GGUF row gg */
                memcpy(blk + (inverse ? hf : gg) * (size_t)cols,
                       work + (inverse ? gg : hf) * (size_t)cols, (size_t)cols * sizeof(float));
            }
    }
    return LORT_OK;
}

// >>adamw ================================================================================ impl

LORT_DEF lort_adamw_desc lort_adamw_default(float lr) {
    lort_adamw_desc d;
    d.lr = lr;
    d.beta1 = 0.9f;
    d.beta2 = 0.999f;
    d.eps = 1e-8f;
    d.weight_decay = 0.01f;
    return d;
}

/* 1 - b^t (b in [0, 1), t >= 1) in float without pow: binary powering of q = 1 - b^k with
   (1 - b^j)(1 - b^k) complemented: q_{j+k} = q_j + q_k - q_j q_k. Every term is small when b is
   near 1, so the bias corrections of AdamW keep their relative precision (a few ulps). */
LORT__PRIVATE float lort__one_minus_pow(float b, long t) {
    float q = 0.0f, base = 1.0f - b;
    while (t > 0) {
        if (t & 1) q = q + base - q * base;
        base = base + base - base * base;
        t >>= 1;
    }
    return q;
}

/* Follows torch.optim.AdamW (single-tensor path) operation by operation. */
LORT_DEF lort_status lort_adamw_step(const lort_adamw_desc *opt, float *params, float *m,
                                     float *v, const float *grads, size_t count, long t) {
    size_t i;
    float bc1, bc2, step_size, bc2_sqrt, decay, b1, b2;
    if (!opt) return LORT_ERR_NULL;
    if (count == 0 || t < 1 || !(opt->lr >= 0.0f) || !lort__finite(opt->lr) ||
        !(opt->beta1 >= 0.0f && opt->beta1 < 1.0f) || !(opt->beta2 >= 0.0f && opt->beta2 < 1.0f) ||
        !(opt->eps > 0.0f) || !lort__finite(opt->eps) || !(opt->weight_decay >= 0.0f) ||
        !lort__finite(opt->weight_decay))
        return LORT_ERR_INVALID_ARG;
    if (!params || !m || !v || !grads) return LORT_ERR_NULL;
    b1 = opt->beta1;
    b2 = opt->beta2;
    bc1 = lort__one_minus_pow(b1, t);
    bc2 = lort__one_minus_pow(b2, t);
    step_size = opt->lr / bc1;
    bc2_sqrt = sqrtf(bc2);
    decay = 1.0f - opt->lr * opt->weight_decay;
    if (!lort__finite(step_size) || !lort__finite(decay) || !(bc2_sqrt > 0.0f))
        return LORT_ERR_INVALID_ARG; /* finite hyper-parameters whose products overflow */
    /* two passes: the first only checks that every new value is finite, so an overflow (or a
       non-finite input) returns LORT_ERR_NONFINITE with params, m and v untouched */
    for (i = 0; i < count; ++i) {
        float g = grads[i], mi = m[i] * b1 + g * (1.0f - b1), vi = v[i] * b2 + (1.0f - b2) * g * g;
        float pi = params[i] * decay - step_size * (mi / (sqrtf(vi) / bc2_sqrt + opt->eps));
        if (!lort__finite(mi) || !lort__finite(vi) || !lort__finite(pi)) return LORT_ERR_NONFINITE;
    }
    for (i = 0; i < count; ++i) {
        float g = grads[i], denom;
        params[i] *= decay;
        m[i] = m[i] * b1 + g * (1.0f - b1);
        v[i] = v[i] * b2 + (1.0f - b2) * g * g;
        denom = sqrtf(v[i]) / bc2_sqrt + opt->eps;
        params[i] += -step_size * (m[i] / denom);
    }
    return LORT_OK;
}

#endif /* LORTENSOR_IMPLEMENTATION_INCLUDED */
#endif /* LORTENSOR_IMPLEMENTATION */

/*
REVISION HISTORY
================
    0.1.0 (2026-11-23)  first release: status codes, allocator, RNG and counter-based dropout,
                        GEMM layer (cblas or built-in), randomized and Jacobi SVD, lora, loraxs,
                        the generic adapter interface, AdamW; tt (LoRETTA rep and adp), cp
                        (LoRTA) and tucker joint tensors (LoTR and FacT-TK as configurations),
                        mpo (DoTA, QDoTA), TT-SVD and rounding, NF4.

LICENSE
=======
MIT License

Copyright (c) 2026 the lortensor authors

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
*/
