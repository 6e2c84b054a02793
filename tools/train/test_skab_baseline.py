"""Checks of the per-line baseline reference (numpy only).

  /usr/bin/python3 -m unittest discover -s tools/train -p 'test_*.py'
"""

import os
import sys
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from skab_baseline import ScoreSettings, fit_line, residual_statistics, timestep_scores  # noqa: E402


class FitLineTests(unittest.TestCase):
    def test_fitLine_knownResiduals_giveStatisticsAndThreshold(self):
        rng = np.random.default_rng(0)
        raw = rng.normal(size=(100, 2)) * [2.0, 5.0] + [10.0, -3.0]
        residuals = np.zeros((37, 64, 2), dtype=np.float32)
        residuals[:, :, 0] = 3.0                       # a constant bias: mean 3, deviation 0 -> floored
        residuals[:, -4:, 1] = rng.normal(size=(37, 4)) * 2.0
        s = ScoreSettings(positions=4, false_alarm_rate=0.1, margin=1.5, residual_std_floor=0.5)

        b = fit_line(raw, residuals, s)

        np.testing.assert_allclose(b["input_mean"], raw.mean(0))
        np.testing.assert_allclose(b["input_std"], raw.std(0))
        np.testing.assert_allclose(b["residual_mean"][0], 3.0)
        self.assertEqual(b["residual_std"][0], 0.5)
        last = residuals[:, -4:, 1].astype(np.float64)
        self.assertAlmostEqual(b["residual_std"][1], max(last.std(), 0.5))
        points = (((last - last.mean()) / b["residual_std"][1]) ** 2 / 2).mean(1)
        self.assertAlmostEqual(b["onboarding_quantile"], np.quantile(points, 0.9))
        self.assertAlmostEqual(b["threshold"], 1.5 * np.quantile(points, 0.9))

    def test_timestepScores_normalizeEachChannel(self):
        r = np.array([[[1.0, 4.0], [3.0, 0.0]]])
        e = timestep_scores(r, np.array([1.0, 0.0]), np.array([2.0, 4.0]))
        np.testing.assert_allclose(e, [[(0 + 1) / 2, (1 + 0) / 2]])

    def test_residualStatistics_useOnlyTheLastPositions(self):
        r = np.zeros((2, 8, 1))
        r[:, -2:, 0] = [[1.0, 3.0], [1.0, 3.0]]
        mean, std = residual_statistics(r, 2, 1e-6)
        self.assertEqual((mean[0], std[0]), (2.0, 1.0))


if __name__ == "__main__":
    unittest.main()
