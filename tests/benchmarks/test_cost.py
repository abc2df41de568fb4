"""Cost arithmetic, throughput and percentiles, and prices the operator sets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from batchserver.errors import Invalid
from benchmarks import figures, services
from benchmarks.models import GpuPrice


def test_self_hosted_cost_is_hourly_price_times_wall_time_per_million_tokens():
    # 2.40 an hour for 90 s = 0.06; 30,000 tokens -> 2.00 per million
    cost = figures.cost(
        hourly_price=Decimal("2.40"), wall_seconds=90, input_tokens=10_000, output_tokens=20_000
    )
    assert cost.gpu_cost == pytest.approx(0.06)
    assert cost.cost_per_million_tokens == pytest.approx(2.0)
    assert cost.cloud_cost is None and cost.cloud_cost_per_million_tokens is None


def test_cloud_cost_prices_input_and_output_tokens_apart():
    # 10,000 in at 0.075/M + 20,000 out at 0.30/M = 0.00075 + 0.006 = 0.00675
    cost = figures.cost(
        hourly_price=None,
        wall_seconds=90,
        input_tokens=10_000,
        output_tokens=20_000,
        cloud_input_per_million=Decimal("0.075"),
        cloud_output_per_million=Decimal("0.30"),
    )
    assert cost.gpu_cost is None
    assert cost.cloud_cost == pytest.approx(0.00675)
    assert cost.cloud_cost_per_million_tokens == pytest.approx(0.225)


def test_no_tokens_means_no_cost_per_million():
    cost = figures.cost(hourly_price=1, wall_seconds=10, input_tokens=0, output_tokens=0)
    assert cost.gpu_cost == pytest.approx(10 / 3600) and cost.cost_per_million_tokens is None


def test_throughput_is_per_wall_second():
    speed = figures.throughput(completed=20, input_tokens=400, output_tokens=1000, wall_seconds=4)
    assert (
        speed.requests_per_second,
        speed.output_tokens_per_second,
        speed.total_tokens_per_second,
    ) == (5, 250, 350)
    assert figures.throughput(0, 0, 0, 4).output_tokens_per_second is None


def test_percentiles_interpolate_like_numpy():
    values = [10, 20, 30, 40, 100]
    assert figures.percentile(values, 50) == 30
    assert figures.percentile(values, 95) == pytest.approx(88)
    assert figures.percentile([], 50) is None


@pytest.mark.parametrize("bad", ["abc", "", "2,50", "nan", "inf", None, "1e400x"])
def test_a_price_that_is_not_a_number_gets_a_clear_message(db, bad):
    with pytest.raises(Invalid) as caught:
        services.set_gpu_price("A100", bad)
    assert "hourly_price must be a number" in caught.value.message
    assert caught.value.param == "hourly_price"
    assert not GpuPrice.objects.exists()


def test_a_negative_price_is_refused(db):
    with pytest.raises(Invalid, match="cannot be negative"):
        services.set_cloud_price("cloud", "-1", "2")


def test_prices_are_stored_as_decimals(db):
    assert services.set_gpu_price("L4", " 0.80 ").hourly_price == Decimal("0.8")
    row = services.set_cloud_price("gpt-4o-mini batch", "0.075", "0.3")
    assert (row.input_per_million, row.output_per_million) == (Decimal("0.075"), Decimal("0.3"))
