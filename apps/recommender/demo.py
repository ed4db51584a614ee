"""`aigc demo` step: ingest the sample shop, train, recommend with reasons, show cold start."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from aigc_apps.errors import DataError
from aigc_apps.registry import ModelRegistry
from aigc_apps.settings import get_settings

from .interest import InterestConfig
from .recommender import RecommendationList, Recommender, RecommenderConfig
from .service import RecommenderService

DATA = Path(__file__).resolve().parents[2] / "data" / "recommender"


def _show(console: Console, title: str, result: RecommendationList, k: int = 5) -> None:
    table = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    for col in ("#", "item", "title", "why"):
        table.add_column(col)
    for n, rec in enumerate(result.items[:k], start=1):
        table.add_row(str(n), rec.item_id, rec.title, "; ".join(rec.reasons))
    console.print(table)


def demo(console: Console) -> None:
    if not (DATA / "items.csv").is_file():
        raise DataError(f"{DATA}: sample catalogue not found (run from a source checkout)")
    console.rule("[bold]Recommender[/bold]: a media shop's catalogue and event log")
    # A separate store and registry, so the demo never mixes into a real catalogue nor
    # replaces the workspace's active model.
    home = (get_settings().home / "demo").resolve()
    registry = ModelRegistry(f"sqlite:///{home / 'registry.db'}")
    try:
        with RecommenderService(f"sqlite:///{home / 'recommender.db'}", registry=registry) as svc:
            _run(console, svc)
    finally:
        registry.close()


def _run(console: Console, service: RecommenderService) -> None:
    report = service.ingest(DATA / "items.csv", DATA / "events.csv")
    console.print(f"Ingested {DATA}: {report.summary()}")

    config = RecommenderConfig(interest=InterestConfig(max_pairs=256, batch_size=32))
    with console.status(
        "Training: MiniLM item embeddings, LoRA-tuned two-tower interest model, EASE, ranker..."
    ):
        trained = service.train(config)
    model, info = trained.model, trained.report
    console.print(
        f"Trained {info['name']} in {info['train_seconds']} s ({info['items']} items, "
        f"{info['users']} users, {info['events']} events; ranker: {info['ranker']}); "
        f"saved to {info['path']}"
    )

    for user in ("u01", "u02"):
        result = service.for_user(user, k=5, explain=True)
        history = [model.catalog.titles[i] for i in model.user_events(user)[0][-3:]]
        _show(console, f"For {user} (recently: {'; '.join(history)})", result)

    console.print(
        "[bold]Cold start[/bold]: 'n-voyager' and 'n-sourdough' are new arrivals "
        "nobody has touched."
    )
    _show(
        console,
        "A new visitor who typed 'I love documentaries about space and planets'",
        service.for_user(
            "visitor", interest="I love documentaries about space and planets", k=5, explain=True
        ),
    )
    _show(
        console,
        "A new visitor after two clicks on baking items",
        service.for_user(None, events=[("coo-02", 1.0), ("coo-08", 2.0)], k=5, explain=True),
    )
    similar = service.similar("n-voyager", k=3)
    console.print(
        "Items like the new 'Voyager' documentary: " + ", ".join(r.title for r in similar)
    )
    _where_cold(console, model)


def _where_cold(console: Console, model: Recommender) -> None:
    for user in model.log.users:
        ids = [r.item_id for r in model.recommend(user, k=10).items]
        hit = next((i for i in ids if i.startswith("n-")), None)
        if hit:
            console.print(
                f"The new item {model.catalog.titles[model.catalog.index[hit]]!r} "
                f"is in {user}'s top 10 "
                f"at rank {ids.index(hit) + 1}, before anyone has interacted with it."
            )
            return
