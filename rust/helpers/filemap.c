// SPDX-License-Identifier: GPL-2.0

#include <linux/backing-dev.h>
#include <linux/fs.h>
#include <linux/pagemap.h>

__rust_helper struct inode *rust_helper_file_inode(const struct file *file)
{
	return file_inode(file);
}

__rust_helper loff_t rust_helper_i_size_read(const struct inode *inode)
{
	return i_size_read(inode);
}

__rust_helper pgoff_t rust_helper_linear_page_index(const struct vm_area_struct *vma,
						    unsigned long address)
{
	return linear_page_index(vma, address);
}

/* A static inline returning false with CONFIG_SHMEM=n. */
__rust_helper bool rust_helper_vma_is_shmem(const struct vm_area_struct *vma)
{
	return vma_is_shmem(vma);
}

__rust_helper struct folio *rust_helper___filemap_get_folio(struct address_space *mapping,
							    pgoff_t index, fgf_t fgf_flags,
							    gfp_t gfp)
{
	return __filemap_get_folio(mapping, index, fgf_flags, gfp);
}

__rust_helper bool rust_helper_vma_is_dax(const struct vm_area_struct *vma)
{
	return vma_is_dax(vma);
}

__rust_helper bool rust_helper_mapping_can_writeback(struct address_space *mapping)
{
	return mapping_can_writeback(mapping);
}
