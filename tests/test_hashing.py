"""Feature hashing: MurmurHash3 against independent implementations, FMEncoder(hash_bits)."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import murmurhash3_32

from fmlearn import FFMClassifier
from fmlearn.data.encoder import FMEncoder
from fmlearn.data.hashing import expected_collision_rate, hash_strings


def _murmur3_reference(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x86_32 written from the reference C code, in plain Python."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[4 * n4 :]
    k = 0
    for j in reversed(range(len(tail))):
        k = (k << 8) | tail[j]
    if tail:
        k = rotl((k * c1) & mask, 15) * c2 & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def _strings(seed=0, n=300):
    rng = np.random.default_rng(seed)
    alphabet = list("abcXYZ019=_ ") + ["é", "ß", "中", "😀"]
    return ["".join(rng.choice(alphabet, size=rng.integers(0, 23))) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_murmur3_matches_two_independent_implementations(seed):
    strings = _strings(seed)
    got = hash_strings(strings, seed)
    ref = [_murmur3_reference(s.encode("utf-8"), seed) for s in strings]
    sk = [murmurhash3_32(s, seed, positive=True) for s in strings]
    assert got.tolist() == ref == sk


def test_published_murmur3_vectors():
    # Vectors from the public MurmurHash3 test suites (SMHasher verification values).
    assert _murmur3_reference(b"", 1) == 0x514E28B7
    assert hash_strings([""], 1)[0] == 0x514E28B7
    assert _murmur3_reference(b"", 0) == hash_strings([""], 0)[0] == 0


def test_hashes_are_stable_across_processes_and_hash_seeds():
    code = ("from fmlearn.data.hashing import hash_strings; "
            "print(hash_strings(['user=42', 'ad=x', 'é=1']).tolist())")
    outs = set()
    for salt in ("0", "random"):
        env = dict(os.environ, PYTHONHASHSEED=salt)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True).stdout)
    assert len(outs) == 1
    expected = [_murmur3_reference(s.encode(), 0) for s in ("user=42", "ad=x", "é=1")]
    assert outs.pop().strip() == str(expected)


def test_encoder_hashes_each_field_into_its_own_columns():
    df = pd.DataFrame({"user": [42, 7, 42, None], "ad": ["x", "y", "zz", "x"],
                       "price": [1.0, 2.0, 3.0, 4.0]})
    bits = 5
    enc = FMEncoder(categorical=["user", "ad"], numeric=["price"], hash_bits=bits)
    X = enc.fit_transform(df)
    assert X.shape == (4, 2 * 32 + 1) and enc.n_features_out_ == 65
    np.testing.assert_array_equal(enc.fields_, np.repeat([0, 1, 2], [32, 32, 1]))
    for r in range(4):
        want = {}
        for f, col in enumerate(["user", "ad"]):
            v = df[col][r]
            if pd.isna(v):
                continue
            text = f"{col}={int(v) if col == 'user' else v}"
            c = f * 32 + (_murmur3_reference(text.encode()) & 31)
            want[c] = want.get(c, 0) + 1.0
        want[64] = df["price"][r]
        row = X[r]
        assert dict(zip(row.indices.tolist(), row.data.tolist(), strict=True)) == want
    names = enc.get_feature_names_out()
    assert names[0] == "user#0" and names[33] == "ad#1" and names[-1] == "price"
    # Stateless: chunks encode as the whole table.
    part = FMEncoder(categorical=["user", "ad"], numeric=["price"], hash_bits=bits)
    np.testing.assert_array_equal(part.fit_transform(df[2:]).toarray(), X[2:].toarray())


def test_signed_hashing_uses_the_second_hash_for_the_sign():
    df = pd.DataFrame({"ad": [f"a{i}" for i in range(200)]})
    X = FMEncoder(categorical=["ad"], hash_bits=16, hash_signed=True).fit_transform(df)
    assert np.all(np.diff(X.indptr) == 1)  # one value per row, in row order
    signs = X.data
    want = [-1.0 if _murmur3_reference(f"ad=a{i}".encode(), 1) & 1 else 1.0 for i in range(200)]
    np.testing.assert_array_equal(signs, want)
    assert 60 < (signs < 0).sum() < 140


def test_collision_rate_is_as_expected():
    n, bits = 20_000, 16
    cols = hash_strings([f"id={i}" for i in range(n)]) & ((1 << bits) - 1)
    counts = np.bincount(cols, minlength=1 << bits)
    observed = (counts[cols] > 1).mean()
    assert abs(observed - expected_collision_rate(n, bits)) < 0.02


def test_ffm_trains_on_hashed_fields():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"u": rng.integers(0, 50, 600), "i": rng.integers(0, 40, 600)})
    y = ((df.u % 2) ^ (df.i % 2)).to_numpy()
    enc = FMEncoder(categorical=["u", "i"], hash_bits=10)
    X = enc.fit_transform(df)
    m = FFMClassifier(n_factors=4, max_iter=5, random_state=0).fit(X, y)
    assert m.n_fields_ == 2 and m.fields_.shape == (2048,)
