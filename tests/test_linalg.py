"""LAPACK Cholesky helpers (sem_models.linalg): results equal numpy's, and a matrix that is
not positive definite, or has a NaN or infinite entry anywhere, is reported as None."""
import numpy as np
import pytest

from sem_models.linalg import cholesky_lower, identity, spd_inverse, spd_inverse_factor, spd_solve


@pytest.fixture
def spd():
    X = np.random.default_rng(1).normal(size=(40, 6))
    return X.T @ X / 40


def test_agree_with_numpy(spd):
    inv, logdet = spd_inverse(spd)
    np.testing.assert_allclose(inv, np.linalg.inv(spd), rtol=1e-12, atol=1e-14)
    assert logdet == pytest.approx(np.linalg.slogdet(spd)[1], rel=1e-13)
    rhs = np.arange(6.0)
    np.testing.assert_allclose(spd_solve(spd, rhs), np.linalg.solve(spd, rhs), rtol=1e-12)
    L = np.tril(cholesky_lower(spd))
    np.testing.assert_allclose(L @ L.T, spd, rtol=1e-12, atol=1e-14)
    Linv = spd_inverse_factor(spd)
    np.testing.assert_allclose(Linv.T @ Linv, np.linalg.inv(spd), rtol=1e-12, atol=1e-14)
    assert not identity(6).flags.writeable and np.array_equal(identity(6), np.eye(6))


def test_not_positive_definite_or_not_finite_is_none(spd):
    indefinite = spd.copy()
    indefinite[0, 1] = indefinite[1, 0] = 10 * np.sqrt(spd[0, 0] * spd[1, 1])
    cases = [indefinite, -spd]
    for i in range(6):
        for j in range(i + 1):
            for bad in (np.nan, np.inf):
                B = spd.copy()
                B[i, j] = B[j, i] = bad
                cases.append(B)
    for B in cases:
        before = B.copy()
        assert cholesky_lower(B) is None
        assert spd_inverse(B) is None
        assert spd_solve(B, np.ones(6)) is None
        assert spd_inverse_factor(B) is None
        np.testing.assert_array_equal(B, before)  # the input is not modified
