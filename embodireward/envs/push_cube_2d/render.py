"""Top-down camera of push_cube_2d: flat-coloured goal disc, cubes and pusher on a grey table."""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from embodireward.envs.push_cube_2d.config import TABLE_HALF_SIZE, PushCube2DConfig

# palette index -> RGB: table, goal, (target) cube, pusher, goal once the cube is in (highlight_success),
# the distractor cube of push_cube_2d_distractor (an orange-red close to the target's crimson) and
# the decoy goal of push_cube_2d_decoy (a teal-green close to the goal's green)
PALETTE = ((200, 200, 200), (60, 180, 75), (230, 25, 75), (0, 90, 200), (255, 225, 25), (235, 75, 40), (70, 170, 95))
TABLE, GOAL, CUBE, PUSHER, GOAL_REACHED, DISTRACTOR, DECOY_GOAL = range(7)


class TopDownRenderer:
    """Renders uint8 ``[K, H, W, 3]`` images of K scenes; image rows go from y = +1 down to y = -1."""

    def __init__(self, cfg: PushCube2DConfig, cube_colours: Sequence[int], device: torch.device):
        self.cfg = cfg
        self.device = device
        pixel = (torch.arange(cfg.image_size, device=device, dtype=torch.float32) + 0.5) / cfg.image_size
        self._pixel_x = (2 * pixel - 1) * TABLE_HALF_SIZE
        self._pixel_y = (1 - 2 * pixel) * TABLE_HALF_SIZE
        self.palette = torch.tensor(PALETTE, dtype=torch.uint8, device=device)
        self._cube_colours = [self.palette[index] for index in cube_colours]
        # one flat background image; copying contiguous rows is much faster than an expanded [H, W, 3]
        self._background = self.palette[TABLE].repeat(cfg.image_size * cfg.image_size).unsqueeze(0)

    def render(self, pusher: torch.Tensor, cubes: torch.Tensor, goal: torch.Tensor, goal_reached: Optional[torch.Tensor],
               decoy_goal: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images of scenes with pusher ``[K, 2]``, cubes ``[K, C, 2]`` (coloured as given at construction) and goal ``[K, 2]``.

        ``goal_reached`` (bool ``[K]``, only read with ``highlight_success``) paints the goal in the
        highlight colour. ``decoy_goal`` (``[K, 2]``) adds a disc of the goal's size in the decoy colour.
        """
        cfg = self.cfg
        size, half, goal_radius, pusher_radius = cfg.image_size, cfg.cube_half_size, cfg.goal_radius, cfg.pusher_radius
        images = self._background.expand(pusher.shape[0], -1).clone().view(-1, size, size, 3)
        if cfg.show_goal:
            goal_colour = self.palette[GOAL]
            if cfg.highlight_success:
                goal_colour = torch.where(goal_reached.unsqueeze(-1), self.palette[GOAL_REACHED], goal_colour)
            in_disc = lambda dx, dy: dx**2 + dy**2 < goal_radius**2  # noqa: E731
            self._stamp(images, goal, goal_radius, in_disc, goal_colour)
            if decoy_goal is not None:
                self._stamp(images, decoy_goal, goal_radius, in_disc, self.palette[DECOY_GOAL])
        for k, colour in enumerate(self._cube_colours):
            self._stamp(images, cubes[:, k], half, lambda dx, dy: (dx.abs() < half) & (dy.abs() < half), colour)
        self._stamp(images, pusher, pusher_radius, lambda dx, dy: dx**2 + dy**2 < pusher_radius**2, self.palette[PUSHER])
        return images

    def _stamp(self, images: torch.Tensor, centres: torch.Tensor, extent: float, inside: Callable, colour: torch.Tensor) -> None:
        """Paint the pixels whose centres satisfy ``inside(dx, dy)`` (offsets from ``centres``).

        Only a square patch of pixels around each shape is tested, which is much cheaper than
        testing every pixel of every image. ``colour``: ``[3]`` or one per image ``[K, 3]``.
        """
        size = self.cfg.image_size
        pixels_per_unit = size / (2 * TABLE_HALF_SIZE)
        # a margin of one pixel on each side absorbs the rounding of the patch corner
        patch = torch.arange(math.ceil(2 * extent * pixels_per_unit) + 3, device=self.device)
        first_col = ((centres[:, 0] - extent + TABLE_HALF_SIZE) * pixels_per_unit).floor().long() - 1
        first_row = ((TABLE_HALF_SIZE - centres[:, 1] - extent) * pixels_per_unit).floor().long() - 1
        cols, rows = first_col[:, None] + patch, first_row[:, None] + patch  # [K, P]
        dx = self._pixel_x[cols.clamp(0, size - 1)] - centres[:, :1]
        dy = self._pixel_y[rows.clamp(0, size - 1)] - centres[:, 1:]
        on_image = lambda index: (index >= 0) & (index < size)  # noqa: E731
        hit = inside(dx[:, None, :], dy[:, :, None]) & on_image(cols)[:, None, :] & on_image(rows)[:, :, None]
        image, row, col = hit.nonzero(as_tuple=True)
        pixel = (image * size + rows[image, row]) * size + cols[image, col]
        images.view(-1, 3)[pixel] = colour if colour.dim() == 1 else colour[image]
