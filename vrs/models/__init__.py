"""Models: the item tower, the sequential recommender and training-free baselines."""

from vrs.models.baselines import PopularityRecommender, VisualProfileRecommender
from vrs.models.item_tower import ItemTower, drop_modalities
from vrs.models.recommender import Recommender

__all__ = ["ItemTower", "PopularityRecommender", "Recommender", "VisualProfileRecommender", "drop_modalities"]
